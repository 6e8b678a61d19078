package sandboxtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat/sandbox"
)

// testCapabilities checks each named capability (sandbox/capability.go)
// that p or its handles implement; one they lack is skipped.
func testCapabilities(t *testing.T, p sandbox.Provider) {
	ctx := t.Context()
	h, err := p.Create(ctx, sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	closeH := func() {
		if !closed {
			closed = true
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := h.Close(cctx); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	}
	defer closeH()
	run := func(t *testing.T, cmd string) string {
		t.Helper()
		r, err := h.Exec(ctx, cmd, sandbox.ExecOptions{})
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("Exec(%q): %v %+v", cmd, err, r)
		}
		return r.Stdout
	}
	run(t, "echo capable > suite-capability")

	t.Run("Named", func(t *testing.T) {
		n, ok := h.(sandbox.Named)
		if !ok {
			t.Skip("not a sandbox.Named")
		}
		name := n.SandboxName()
		if name == "" || strings.ContainsAny(name, " \t\n/") || n.SandboxName() != name {
			t.Errorf("SandboxName() = %q: want one stable word", name)
		}
	})
	t.Run("Reachable", func(t *testing.T) {
		r, ok := h.(sandbox.Reachable)
		if !ok {
			t.Skip("not a sandbox.Reachable")
		}
		a := r.Access()
		if a.Reach == "" || a.Remove == "" {
			t.Errorf("Access() = %+v: want how to reach and remove it", a)
		}
		for _, line := range []string{a.SSH, a.Reach, a.Remove} {
			if strings.ContainsAny(line, "\n\r") {
				t.Errorf("Access() line %q: want one line each", line)
			}
		}
		if a.SSH != "" && !strings.HasPrefix(a.SSH, "ssh ") {
			t.Errorf("Access().SSH = %q: want an ssh command line", a.SSH)
		}
	})
	t.Run("OnHost", func(t *testing.T) {
		oh, ok := h.(sandbox.OnHost)
		if !ok {
			t.Skip("not a sandbox.OnHost")
		}
		work, all, ok := oh.HostPaths()
		if !ok || work == "" || len(all) == 0 {
			t.Fatalf("HostPaths() = %q, %q, %v: want the work directory and what removes it", work, all, ok)
		}
		// The work directory on the host is the sandbox's: what a command
		// wrote there is there.
		data, err := os.ReadFile(filepath.Join(work, "suite-capability"))
		if err != nil || string(data) != "capable\n" {
			t.Errorf("%s/suite-capability on the host: %q, %v; want what the sandbox wrote", work, data, err)
		}
		rel, err := filepath.Rel(all[0], work)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("the work directory %s is not inside the sandbox's directory %s", work, all[0])
		}
	})
	t.Run("Keeper", func(t *testing.T) {
		k, ok := h.(sandbox.Keeper)
		if !ok {
			t.Skip("not a sandbox.Keeper")
		}
		if err := k.MarkKept(ctx); err != nil {
			t.Fatalf("MarkKept: %v", err)
		}
		// Marked, it stays open and usable, and Close still destroys it.
		if got := run(t, "cat suite-capability"); got != "capable\n" {
			t.Errorf("after MarkKept, the sandbox reads %q", got)
		}
		if err := k.MarkKept(ctx); err != nil {
			t.Errorf("MarkKept again: %v", err)
		}
		var work string
		if oh, isOnHost := h.(sandbox.OnHost); isOnHost {
			work, _, _ = oh.HostPaths()
		}
		closeH()
		if work != "" {
			if _, err := os.Stat(work); !os.IsNotExist(err) {
				t.Errorf("a kept sandbox's Close left %s: %v", work, err)
			}
		}
	})
	t.Run("Holder", func(t *testing.T) {
		hd, ok := p.(sandbox.Holder)
		if !ok {
			t.Skip("not a sandbox.Holder")
		}
		release, err := hd.Hold()
		if err != nil {
			t.Fatalf("Hold: %v", err)
		}
		// Held, sandboxes are made and closed as ever; release twice
		// would be a bug in the caller, once is the contract.
		h2, err := p.Create(ctx, sandbox.CreateOptions{})
		if err != nil {
			release()
			t.Fatalf("Create while held: %v", err)
		}
		if r, err := h2.Exec(ctx, "true", sandbox.ExecOptions{}); err != nil || r.ExitCode != 0 {
			t.Errorf("Exec while held: %v %+v", err, r)
		}
		if err := h2.Close(ctx); err != nil {
			t.Errorf("Close while held: %v", err)
		}
		release()
	})
}
