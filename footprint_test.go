package moat_test

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/sandbox/local"
)

// TestFootprint: while the agent runs, the footprint lists the run's
// temporary directory, its refs and its sandbox (which exist); after a
// run that landed, nothing; after a failed one, what it kept.
func TestFootprint(t *testing.T) {
	repo := newRepo(t)
	fp := &moat.Footprint{}
	var mu sync.Mutex
	var during []moat.Kept
	missing := map[string]error{} // what was listed and not there
	res, err := moat.Run(t.Context(), moat.RunOptions{
		Repo: repo, Sandbox: local.New(local.Config{}), Agent: fakeAgent(), LogFile: "-", Footprint: fp,
		Prompt: `echo a > a.txt; commit "the agent's work"`,
		OnEvent: func(e moat.Event) {
			if e.Kind == moat.EventIterationStart {
				mu.Lock()
				during = fp.Leftovers()
				for _, k := range during {
					if k.What == "directory" || k.What == "sandbox" {
						if _, err := os.Stat(k.Path); err != nil {
							missing[k.What] = err
						}
					}
				}
				mu.Unlock()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, k := range during {
		kinds[k.What] = k.Path
	}
	if kinds["directory"] == "" || kinds["sandbox"] == "" || len(missing) > 0 {
		t.Errorf("during the run: listed %+v, not there: %v", during, missing)
	}
	if !strings.HasPrefix(kinds["refs"], "refs/moat/runs/"+res.RunID) {
		t.Errorf("the run's refs are not listed: %+v", during)
	}
	if fp.RunID() != res.RunID {
		t.Errorf("RunID %q, want %q", fp.RunID(), res.RunID)
	}
	if left := fp.Leftovers(); len(left) != 0 || fp.Sandbox() != nil {
		t.Errorf("after a run that landed, the footprint still lists %+v (sandbox %v)", left, fp.Sandbox())
	}

	fp = &moat.Footprint{}
	res, err = moat.Run(t.Context(), moat.RunOptions{
		Repo: repo, Sandbox: local.New(local.Config{}), Agent: fakeAgent(), LogFile: "-", Footprint: fp,
		Prompt: `echo b > b.txt; commit "before failing"; exit 2`,
	})
	if err == nil {
		t.Fatal("the run did not fail")
	}
	left := fp.Leftovers()
	if len(left) != 1 || left[0].What != "branch" || left[0].Path != keptPath(res, "branch") {
		t.Errorf("after a failed run the footprint lists %+v; want only the kept branch %q", left, keptPath(res, "branch"))
	}
	if out := git(t, repo, "for-each-ref", "refs/moat/"); out != "" {
		t.Errorf("the run's refs are left beside its kept branch: %s", out)
	}
}
