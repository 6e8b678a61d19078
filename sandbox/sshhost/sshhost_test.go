package sshhost_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/sshdtest"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/internal/testenv"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/sandboxtest"
	"github.com/moatdev/moat/sandbox/sshhost"
)

// sandboxBase is the test's WorkDir under the SSH user's home, named per
// process too: several `go test` processes may share the host's test user.
func sandboxBase(t *testing.T) string {
	return fmt.Sprintf("sandboxes %s %d", strings.ReplaceAll(t.Name(), "/", "_"), os.Getpid())
}

func newProvider(t *testing.T, srv *sshdtest.Server) *sshhost.Provider {
	t.Cleanup(func() { os.RemoveAll(filepath.Join(srv.HomeDir, sandboxBase(t))) })
	return sshhost.New(sshhost.Config{
		Addr:           srv.Addr,
		User:           srv.User,
		IdentityFile:   srv.KeyFile,
		KnownHostsFile: srv.KnownHostsFile,
		WorkDir:        "~/" + sandboxBase(t),
		SSH:            sshx.Config{SSHConfigFile: "none", AgentSocket: "none", HomeDir: t.TempDir()},
	})
}

// leftovers lists what remains in the provider's WorkDir on the host.
func leftovers(t *testing.T, srv *sshdtest.Server) []string {
	t.Helper()
	dir := filepath.Join(srv.HomeDir, sandboxBase(t))
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestConformance(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.Options{})
	p := newProvider(t, srv)
	t.Cleanup(func() { // runs after the suite's own Close, before newProvider's removal
		if left := leftovers(t, srv); len(left) > 0 {
			t.Errorf("sandbox directories left on the host after Close: %v", left)
		}
	})
	var opts sandboxtest.Options
	if !srv.CanSudo() {
		if testenv.InCI() {
			t.Fatal("CI=true and the SSH test user cannot sudo: install sudo (scripts/test.sh does)")
		}
		opts.NoSudo = "the SSH test user cannot sudo: install sudo"
	}
	sandboxtest.RunWith(t, p, opts)
}

func TestCloseWithCancelledContextRemovesSandbox(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.Options{})
	p := newProvider(t, srv)
	h, err := p.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := h.Exec(t.Context(), "mkdir -p a/b && echo x > f && chmod 500 a", sandbox.ExecOptions{}); err != nil || r.ExitCode != 0 {
		t.Fatalf("exec: %v %+v", err, r)
	}
	if len(leftovers(t, srv)) != 2 {
		t.Fatalf("want one sandbox directory and its record on the host, have %v", leftovers(t, srv))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("Close with a cancelled context: %v", err)
	}
	if left := leftovers(t, srv); len(left) > 0 {
		t.Errorf("Close left %v on the host (a read-only directory inside must not stop it)", left)
	}
}

// TestSecretsStayOffCommandLines scans every process's argv on this machine
// (sshd and the sandbox share it) while a command that holds a secret in its
// environment runs.
func TestSecretsStayOffCommandLines(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	srv := sshdtest.Start(t, sshdtest.Options{})
	h, err := newProvider(t, srv).Create(t.Context(), sandbox.CreateOptions{Env: map[string]string{"MOAT_CREATE_SECRET": "create-s3cr3t-7f9a"}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	done := make(chan error, 1)
	go func() {
		r, err := h.Exec(t.Context(), `sleep 2; printf '%s|%s' "$MOAT_CREATE_SECRET" "$MOAT_EXEC_SECRET"`, sandbox.ExecOptions{
			Env: map[string]string{"MOAT_EXEC_SECRET": "exec-s3cr3t-2b4c"},
		})
		if err == nil && r.Stdout != "create-s3cr3t-7f9a|exec-s3cr3t-2b4c" {
			err = fmt.Errorf("the command saw %q, not the secrets", r.Stdout)
		}
		done <- err
	}()
	deadline := time.Now().Add(1500 * time.Millisecond)
	scans := 0
	for time.Now().Before(deadline) {
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, f := range procs {
			b, _ := os.ReadFile(f)
			if s := string(b); strings.Contains(s, "s3cr3t") {
				t.Fatalf("a secret is on a command line: %s: %q", f, strings.ReplaceAll(s, "\x00", " "))
			}
		}
		scans++
		time.Sleep(50 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if scans < 5 {
		t.Fatalf("only %d scans of /proc", scans)
	}
}

// TestCloseStopsLeftoverProcesses: a background process a command left
// running on the host (nohup, a new session) is killed by Close, and one
// of another sandbox is not.
func TestCloseStopsLeftoverProcesses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	srv := sshdtest.Start(t, sshdtest.Options{})
	p := newProvider(t, srv)
	a, err := p.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	for h, secs := range map[sandbox.Handle]string{a: "4321.5", b: "4322.5"} {
		if r, err := h.Exec(t.Context(), "nohup sleep "+secs+" >/dev/null 2>&1 & setsid sleep "+secs+" >/dev/null 2>&1 &", sandbox.ExecOptions{}); err != nil || r.ExitCode != 0 {
			t.Fatalf("start: %v %+v", err, r)
		}
	}
	count := func(arg string) int {
		n := 0
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, f := range procs {
			if b, _ := os.ReadFile(f); string(b) == "sleep\x00"+arg+"\x00" {
				n++
			}
		}
		return n
	}
	// The command returns before its background children have exec'd
	// sleep: wait for them.
	deadline := time.Now().Add(5 * time.Second)
	for (count("4321.5") != 2 || count("4322.5") != 2) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if na, nb := count("4321.5"), count("4322.5"); na != 2 || nb != 2 {
		t.Fatalf("background sleeps: %d and %d, want 2 and 2", na, nb)
	}
	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for count("4321.5") > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := count("4321.5"); n != 0 {
		t.Errorf("%d leftover processes of the closed sandbox still run", n)
	}
	if n := count("4322.5"); n != 2 {
		t.Errorf("the other sandbox's processes: %d, want 2 untouched", n)
	}
}
