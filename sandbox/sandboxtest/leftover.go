package sandboxtest

import (
	"context"
	"testing"
	"time"

	"github.com/moatdev/moat/sandbox"
)

// testLeftovers checks a provider that is a sandbox.LeftoverFinder: a
// sandbox it made is listed, in use, with its labels and creation time;
// OpenLeftover reaches the same repository directory and leaves the
// sandbox as it is when closed; RemoveLeftover removes it (twice is no
// error), after which the sandbox's own Close still succeeds.
func testLeftovers(t *testing.T, p sandbox.Provider) {
	f, ok := p.(sandbox.LeftoverFinder)
	if !ok {
		t.Skip("not a sandbox.LeftoverFinder")
	}
	ctx := t.Context()
	run := "suite-" + randHex(6)
	before := time.Now().Add(-2 * time.Second)
	h, err := p.Create(ctx, sandbox.CreateOptions{Labels: map[string]string{sandbox.LabelRepo: "/suite/repo", sandbox.LabelRun: run}})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			h.Close(context.Background())
		}
	}()
	exec := func(h sandbox.Handle, cmd string) sandbox.ExecResult {
		t.Helper()
		r, err := h.Exec(ctx, cmd, sandbox.ExecOptions{})
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("Exec(%q): %v %+v", cmd, err, r)
		}
		return r
	}
	exec(h, "echo left > suite-leftover")
	find := func() (sandbox.Leftover, bool) {
		t.Helper()
		ls, err := f.Leftovers(ctx)
		if err != nil {
			t.Fatalf("Leftovers: %v", err)
		}
		for _, l := range ls {
			if l.Labels[sandbox.LabelRun] == run {
				return l, true
			}
		}
		return sandbox.Leftover{}, false
	}
	l, ok := find()
	if !ok {
		t.Fatalf("Leftovers does not list the sandbox just made (labels %s=%s)", sandbox.LabelRun, run)
	}
	if l.Kind != f.Kind() || l.Name == "" || !l.InUse || l.Repo() != "/suite/repo" || l.Created.Before(before) || l.Created.After(time.Now().Add(2*time.Second)) {
		t.Errorf("the leftover of a sandbox in use: %+v", l)
	}
	if c, ok := f.(sandbox.ProcessCounter); ok {
		ls := []sandbox.Leftover{l}
		c.CountProcesses(ctx, ls)
		if ls[0].Processes < 0 {
			t.Errorf("CountProcesses left the count unknown: %+v", ls[0])
		}
	}

	o, err := f.OpenLeftover(ctx, l)
	if err != nil {
		t.Fatalf("OpenLeftover: %v", err)
	}
	if o.WorkDir() != h.WorkDir() {
		t.Errorf("OpenLeftover's WorkDir is %q, the sandbox's %q", o.WorkDir(), h.WorkDir())
	}
	if r := exec(o, "cat suite-leftover"); r.Stdout != "left\n" {
		t.Errorf("the reopened sandbox reads %q", r.Stdout)
	}
	if err := o.Close(ctx); err != nil {
		t.Errorf("closing the reopened handle: %v", err)
	}
	if r := exec(h, "cat suite-leftover"); r.Stdout != "left\n" {
		t.Errorf("after the reopened handle closed, the sandbox reads %q", r.Stdout)
	}

	if err := f.RemoveLeftover(ctx, l); err != nil {
		t.Fatalf("RemoveLeftover: %v", err)
	}
	if _, ok := find(); ok {
		t.Error("still listed after RemoveLeftover")
	}
	if err := f.RemoveLeftover(ctx, l); err != nil {
		t.Errorf("RemoveLeftover of one already gone: %v", err)
	}
	closed = true
	if err := h.Close(ctx); err != nil {
		t.Errorf("Close of a sandbox already removed: %v", err)
	}
}
