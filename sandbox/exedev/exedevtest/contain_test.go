//go:build linux

package exedevtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
