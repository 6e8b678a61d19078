//go:build unix

package local

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/moatdev/moat/sandbox"
)

// TestCloseKillsWhatLeftTheGroup: a process that put itself in a session
// of its own (setsid, as a daemon does) still carries the sandbox's mark
// and dies with the sandbox, in both modes; the mark cannot be overridden
// by the sandbox's environment.
func TestCloseKillsWhatLeftTheGroup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	forModes(t, func(t *testing.T, p *Provider) {
		h, err := p.Create(t.Context(), sandbox.CreateOptions{Env: map[string]string{sandbox.MarkerVar: "forged"}})
		if err != nil {
			t.Fatal(err)
		}
		marker := uniqueSleep()
		// The command waits until the daemon has left its group.
		r := run(t, h, `printf '%s' "$`+sandbox.MarkerVar+`"; setsid sh -c 'touch up; exec sleep `+marker+`' </dev/null >/dev/null 2>&1 & while [ ! -e up ]; do sleep 0.01; done`, nil)
		if want := filepath.Base(filepath.Dir(filepath.Dir(h.WorkDir()))); r.Stdout != want {
			t.Errorf("%s is %q in the sandbox, want %q", sandbox.MarkerVar, r.Stdout, want)
		}
		if p.Isolated() {
			// Under bwrap the pid namespace ends it with the command already.
			waitFor(t, "the daemon to die with its pid namespace", func() bool { return len(sleeping(marker)) == 0 })
		} else {
			waitFor(t, "the daemon to run", func() bool { return len(sleeping(marker)) == 1 })
		}
		if err := h.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the daemon to die with the sandbox", func() bool { return len(sleeping(marker)) == 0 })
	})
}

// TestLeftovers: a sandbox whose maker runs is listed in use; once its
// record names a maker that is gone, it is a leftover, which OpenLeftover
// opens without removing and RemoveLeftover removes with its processes and
// record. A name from elsewhere is refused.
func TestLeftovers(t *testing.T) {
	forModes(t, func(t *testing.T, p *Provider) {
		h, err := p.Create(t.Context(), sandbox.CreateOptions{Labels: map[string]string{sandbox.LabelRepo: "/some/repo"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close(context.Background()) })
		run(t, h, "echo kept > f", nil)
		ls, err := p.Leftovers(t.Context())
		if err != nil || len(ls) != 1 {
			t.Fatalf("Leftovers: %v %+v", err, ls)
		}
		if ls[0].Processes != -1 {
			t.Errorf("Leftovers counted processes: %+v", ls[0])
		}
		p.CountProcesses(t.Context(), ls)
		l := ls[0]
		if !l.InUse || l.Kind != "local" || l.Repo() != "/some/repo" || l.Created.IsZero() || l.Processes != 0 {
			t.Errorf("leftover of a live sandbox: %+v", l)
		}

		// Its maker is gone: a process that has exited.
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			t.Fatal(err)
		}
		rec := l.Record
		rec.Owner.PID, rec.Owner.Start = dead.ProcessState.Pid(), 0
		dir := l.Where
		if err := os.WriteFile(recordPath(dir), rec.Marshal(), 0o600); err != nil {
			t.Fatal(err)
		}
		ls, _ = p.Leftovers(t.Context())
		if len(ls) != 1 || ls[0].InUse {
			t.Fatalf("a sandbox whose maker is gone: %+v", ls)
		}
		o, err := p.OpenLeftover(t.Context(), ls[0])
		if err != nil {
			t.Fatal(err)
		}
		if r := run(t, o, "cat f", nil); r.Stdout != "kept\n" {
			t.Errorf("the reopened sandbox reads %q", r.Stdout)
		}
		if err := o.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "home", "workspace", "f")); err != nil {
			t.Fatalf("closing the reopened handle removed the sandbox: %v", err)
		}

		bad := ls[0]
		bad.Name = "../../etc"
		if err := p.RemoveLeftover(t.Context(), bad); err == nil {
			t.Error("RemoveLeftover took a name that is not a local sandbox's")
		}
		if err := p.RemoveLeftover(t.Context(), ls[0]); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{dir, recordPath(dir)} {
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s is still there: %v", path, err)
			}
		}
		if ls, _ := p.Leftovers(t.Context()); len(ls) != 0 {
			t.Errorf("still listed: %+v", ls)
		}
	})
}
