//go:build linux

package exedevtest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"github.com/moatdev/moat/internal/testenv"
)

// TestStartRefusesUncontained: without bwrap on PATH, Start fails saying
// what is missing and how to get it; WithNoIsolation runs VM commands as
// plain processes and Containment says why. Not parallel: it sets PATH.
func TestStartRefusesUncontained(t *testing.T) {
	bin := t.TempDir() // sh, and no bwrap
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sh, filepath.Join(bin, "sh")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)

	s, err := Start()
	if err == nil {
		s.Close()
		t.Fatal("Start without bwrap on PATH succeeded")
	}
	var nc *NoContainmentError
	if !errors.Is(err, ErrNoContainment) || !errors.As(err, &nc) {
		t.Fatalf("Start: %v (%T), want a *NoContainmentError", err, err)
	}
	if want := "cannot contain its VMs here: bwrap not found on PATH; install bubblewrap (apt-get install bubblewrap)"; !strings.Contains(err.Error(), want) {
		t.Errorf("Start: %q, want it to say %q", err, want)
	}

	s, err = Start(WithNoIsolation())
	if err != nil {
		t.Fatalf("Start(WithNoIsolation()): %v", err)
	}
	defer s.Close()
	if s.Sandboxed() || !errors.Is(s.Containment(), ErrNoContainment) {
		t.Errorf("Sandboxed() = %v, Containment() = %v", s.Sandboxed(), s.Containment())
	}
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	a := newVM(t, lobby, "--name=plain-vm")
	c := mustDial(t, s, a.addr(), "exedev")
	home, _ := s.VMHome("plain-vm")
	if r := run(c, `echo "$HOME"`, nil); r.stdout != home+"\n" {
		t.Errorf("a plain VM's command: %+v, want HOME %s", r, home)
	}
}

// TestVMDiesWithItsHolder: when the VM's holder dies, every process of the
// VM dies with it (its PID namespace's init is gone), daemons that left
// their session included.
func TestVMDiesWithItsHolder(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	if !s.Sandboxed() {
		testenv.Unavailable(t, "the emulator cannot contain VMs here: %v", s.Containment())
	}
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	a := newVM(t, lobby, "--name=holder-vm")
	c := mustDial(t, s, a.addr(), "exedev")
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, _ := sess.StdoutPipe()
	sess.Start("setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; sleep 1000")
	var daemon int
	fmt.Fscan(out, &daemon)
	daemon = hostPID(t, s, "holder-vm", daemon)
	v := s.lookup("holder-vm")
	v.mu.Lock()
	holder := v.mach.cmd.Process
	v.mu.Unlock()
	holder.Kill()
	if !waitGone(daemon, 5*time.Second) {
		t.Errorf("VM process %d survived its holder", daemon)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("the session of a dead VM ended with status 0")
		}
	case <-time.After(5 * time.Second):
		t.Error("the session of a dead VM did not end")
	}
}

// TestSFTPFollowsLinksAsTheVM: the SFTP server runs on the host, but a
// link a VM's process plants leads it where it leads inside the VM,
// never to a host file the VM does not see, for reading or writing.
func TestSFTPFollowsLinksAsTheVM(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	if !s.Sandboxed() {
		testenv.Unavailable(t, "the emulator cannot contain VMs here: %v", s.Containment())
	}
	hostDir := t.TempDir() // on the host, not in the VM
	canary := filepath.Join(hostDir, "canary")
	if err := os.WriteFile(canary, []byte("host secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	a := newVM(t, lobby, "--name=link-vm")
	c := mustDial(t, s, a.addr(), "exedev")
	r := run(c, `ln -s "$C" leak && ln -s "$D" leakdir && ln -s /etc/passwd passwd && ln -s /home/exedev/mine abs && echo mine > mine`, nil, "C", canary, "D", hostDir)
	if r.code != 0 {
		t.Fatalf("planting links: %+v", r)
	}
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	read := func(p string) (string, error) {
		f, err := sc.Open(p)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		return string(b), err
	}
	if got, err := read("leak"); err == nil || strings.Contains(got, "host secret") {
		t.Errorf("read through a planted link: %q, %v", got, err)
	}
	if got, err := read("leakdir/canary"); err == nil || strings.Contains(got, "host secret") {
		t.Errorf("read through a planted directory link: %q, %v", got, err)
	}
	if f, err := sc.Create("leakdir/written"); err == nil {
		f.Close()
	}
	if _, err := os.Stat(filepath.Join(hostDir, "written")); err == nil {
		t.Errorf("wrote on the host through a planted directory link")
	}
	// Links to what the VM sees work as inside it.
	if got, err := read("abs"); err != nil || got != "mine\n" {
		t.Errorf("absolute link inside the home: %q, %v", got, err)
	}
	if got, err := read("passwd"); err != nil || !strings.Contains(got, "root:") {
		t.Errorf("link to /etc/passwd: %q, %v", got, err)
	}
}
