//go:build linux

package local

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/moatdev/moat/sandbox"
)

// TestContainHidesHost tries the escapes of issue 13 under bwrap with the
// default (isolated) network and asserts each fails.
func TestContainHidesHost(t *testing.T) {
	if _, err := os.Stat("/usr/bin/bwrap"); err != nil {
		t.Skip("bwrap not installed")
	}
	p := New(Config{Root: t.TempDir(), Network: NetworkIsolated})
	h := create(t, p)
	home, _ := os.UserHomeDir()
	canary := filepath.Join(home, ".moat-canary-test")
	if err := os.WriteFile(canary, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(canary) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sock := filepath.Join(os.TempDir(), "moat-canary.sock")
	os.Remove(sock)
	ul, err := net.Listen("unix", sock)
	if err == nil {
		defer ul.Close()
		defer os.Remove(sock)
	}
	for _, c := range []struct{ name, cmd string }{
		{"home canary", `cat "$F"`},
		{"tcp loopback", `exec 3<>/dev/tcp/127.0.0.1/` + portOf(ln) + ` 2>/dev/null || bash -c 'exec 3<>/dev/tcp/127.0.0.1/` + portOf(ln) + `'`},
		{"unix socket", `test -S "$S"`},
		{"proc root write", `for d in /proc/[0-9]*/root; do touch "$d$F.x" 2>/dev/null && exit 0; done; exit 1`},
		{"run", `ls /run/* >/dev/null 2>&1`},
	} {
		r, err := h.Exec(t.Context(), c.cmd, sandbox.ExecOptions{Env: map[string]string{"F": canary, "S": sock}})
		if err != nil {
			t.Fatal(err)
		}
		if r.ExitCode == 0 {
			t.Errorf("%s: escape succeeded: %q", c.name, r.Stdout)
		}
	}
	if _, err := os.Stat(canary + ".x"); err == nil {
		t.Error("wrote through /proc/*/root")
	}
}

func portOf(l net.Listener) string {
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}
