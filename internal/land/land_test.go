package land

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/internal/worktree/hostgit/hostgittest"
)

func TestMain(m *testing.M) { hostgittest.Main(m) }

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return hostgittest.Git(t, dir, args...)
}

// repo makes a repository on main with one commit, and the agent's work:
// a commit on top of it at refs/moat/runs/x/head. It returns the base
// and the head.
func repo(t *testing.T, agentFile string) (dir, base, head string) {
	dir = t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	git(t, dir, "config", "user.name", "U")
	git(t, dir, "config", "user.email", "u@example.com")
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644)
	git(t, dir, "add", "a.txt")
	git(t, dir, "commit", "-qm", "base")
	base = git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "checkout", "-q", "--detach")
	os.MkdirAll(filepath.Dir(filepath.Join(dir, agentFile)), 0o755)
	os.WriteFile(filepath.Join(dir, agentFile), []byte("agent\n"), 0o644)
	git(t, dir, "add", agentFile)
	git(t, dir, "commit", "-qm", "agent")
	head = git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "checkout", "-q", "main")
	return dir, base, head
}

func TestNamedBranchCreatedThenAdvancedThenMerged(t *testing.T) {
	dir, base, head := repo(t, "b.txt")
	o := Options{Repo: dir, Base: base, Head: head, Branch: "feature", KeepBranch: "moat/x"}
	res, err := Land(t.Context(), o)
	if err != nil || git(t, dir, "rev-parse", "feature") != head || len(res.Commits) != 1 || res.Merge != nil {
		t.Fatalf("new branch: %+v %v", res, err)
	}
	// The branch moved meanwhile (checked out nowhere): a merge commit
	// made without a checkout, the user's tree untouched.
	git(t, dir, "checkout", "-q", "feature")
	os.WriteFile(filepath.Join(dir, "c.txt"), []byte("c\n"), 0o644)
	git(t, dir, "add", "c.txt")
	git(t, dir, "commit", "-qm", "user on feature")
	git(t, dir, "checkout", "-q", "main")
	moved := git(t, dir, "rev-parse", "feature")
	git(t, dir, "checkout", "-q", "--detach", head)
	os.WriteFile(filepath.Join(dir, "d.txt"), []byte("d\n"), 0o644)
	git(t, dir, "add", "d.txt")
	git(t, dir, "commit", "-qm", "agent again")
	head2 := git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "checkout", "-q", "main")
	res, err = Land(t.Context(), Options{Repo: dir, Base: head, Head: head2, Branch: "feature", KeepBranch: "moat/y"})
	if err != nil || res.Merge == nil || len(res.Commits) != 1 || res.Commits[0].SHA != head2 {
		t.Fatalf("moved branch: %+v %v", res, err)
	}
	if p := strings.Fields(git(t, dir, "log", "-1", "--format=%P", "feature")); len(p) != 2 || p[0] != moved || p[1] != head2 {
		t.Errorf("merge parents %v", p)
	}
	if git(t, dir, "status", "--porcelain") != "" || git(t, dir, "branch", "--list", "moat/*") != "" {
		t.Error("left a dirty tree or a kept branch after landing")
	}
}

func TestCheckedOutDirtyBranchRefused(t *testing.T) {
	dir, base, head := repo(t, "b.txt")
	git(t, dir, "branch", "feature", base)
	git(t, dir, "checkout", "-q", "feature")
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("user edit\n"), 0o644)
	_, err := Land(t.Context(), Options{Repo: dir, Base: base, Head: head, Branch: "feature", KeepBranch: "moat/x"})
	var nl *NotLandedError
	if !errors.As(err, &nl) || !strings.Contains(err.Error(), "uncommitted changes") {
		t.Fatalf("Land = %v; want a refusal naming the uncommitted changes", err)
	}
	if git(t, dir, "rev-parse", "feature") != base || git(t, dir, "rev-parse", "moat/x") != head {
		t.Error("the branch moved, or the work was not kept")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "user edit\n" {
		t.Errorf("the user's edit is gone: %q", b)
	}
}

func TestRewrittenBelowBaseRefused(t *testing.T) {
	dir, base, _ := repo(t, "b.txt")
	// The agent's history no longer contains the base.
	git(t, dir, "checkout", "-q", "--orphan", "other")
	git(t, dir, "commit", "-qm", "rewritten")
	head := git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "checkout", "-q", "-f", "main")
	_, err := Land(t.Context(), Options{Repo: dir, Base: base, Head: head, Target: "main", KeepBranch: "moat/x"})
	if err == nil || !strings.Contains(err.Error(), "rewrote history") || git(t, dir, "rev-parse", "main") != base {
		t.Fatalf("Land = %v, main %s", err, git(t, dir, "rev-parse", "main"))
	}
}

func TestMoatDirNeverLandsByItself(t *testing.T) {
	for _, o := range []Options{{Target: "main"}, {Branch: "feature"}} {
		dir, base, head := repo(t, ".moat/config.toml")
		o.Repo, o.Base, o.Head, o.KeepBranch = dir, base, head, "moat/x"
		_, err := Land(t.Context(), o)
		if err == nil || !strings.Contains(err.Error(), ".moat/config.toml") {
			t.Errorf("%+v: Land = %v; want a refusal", o, err)
		}
		if git(t, dir, "rev-parse", "moat/x") != head || git(t, dir, "rev-parse", "main") != base {
			t.Errorf("%+v: not kept, or main moved", o)
		}
	}
}

// Merge-to-head: a fast-forward while main has not moved (merge.ff=false
// in the user's config notwithstanding), then a real merge once it has,
// whose merge commit is reported apart from the agent's commits.
func TestMergeToHeadFastForwardThenMerge(t *testing.T) {
	dir, base, head := repo(t, "b.txt")
	git(t, dir, "config", "merge.ff", "false")
	res, err := Land(t.Context(), Options{Repo: dir, Base: base, Head: head, Target: "main", KeepBranch: "moat/x"})
	if err != nil || res.Merge != nil || len(res.Commits) != 1 || res.Commits[0].SHA != head || res.After != head || res.Before != base {
		t.Fatalf("fast-forward: %+v %v", res, err)
	}
	if got := git(t, dir, "rev-parse", "main"); got != head {
		t.Fatalf("main at %s, want %s", got, head)
	}
	if out := git(t, dir, "branch", "--list", "moat/*"); out != "" {
		t.Errorf("a landed run left branches: %q", out)
	}
	// The agent commits again on top; the user commits on main meanwhile.
	git(t, dir, "checkout", "-q", "--detach")
	os.WriteFile(filepath.Join(dir, "d.txt"), []byte("d\n"), 0o644)
	git(t, dir, "add", "d.txt")
	git(t, dir, "commit", "-qm", "agent 2")
	head2 := git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "checkout", "-q", "main")
	os.WriteFile(filepath.Join(dir, "u.txt"), []byte("u\n"), 0o644)
	git(t, dir, "add", "u.txt")
	git(t, dir, "commit", "-qm", "user")
	user := git(t, dir, "rev-parse", "HEAD")
	res, err = Land(t.Context(), Options{Repo: dir, Base: head, Head: head2, Target: "main", KeepBranch: "moat/y",
		Identity: &hostgit.Identity{Name: "Merger", Email: "m@example.com"}})
	if err != nil || len(res.Commits) != 1 || res.Commits[0].SHA != head2 || res.Merge == nil || res.Before != user {
		t.Fatalf("merge: %+v %v", res, err)
	}
	if res.Merge.Subject != "Merge branch 'moat/y' into main" || res.After != res.Merge.SHA {
		t.Errorf("merge commit %+v, after %s", res.Merge, res.After)
	}
	if got := git(t, dir, "log", "-1", "--format=%P %an", "main"); got != user+" "+head2+" Merger" {
		t.Errorf("main's tip has parents and author %q", got)
	}
	// Landing the same commits again is nothing to do.
	res, err = Land(t.Context(), Options{Repo: dir, Base: head, Head: head2, Target: "main", KeepBranch: "moat/z"})
	if err != nil || !res.NothingToDo {
		t.Errorf("again: %+v %v", res, err)
	}
}

// A path the run adds where the user has an ignored file stops the merge;
// the same name tracked on main does not.
func TestMergeToHeadIgnoredFileInTheWay(t *testing.T) {
	dir, base, head := repo(t, "secrets/.env")
	os.WriteFile(filepath.Join(dir, ".git", "info", "exclude"), []byte("/secrets/\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "secrets"), 0o755)
	os.WriteFile(filepath.Join(dir, "secrets", ".env"), []byte("TOKEN=mine\n"), 0o600)
	_, err := Land(t.Context(), Options{Repo: dir, Base: base, Head: head, Target: "main", KeepBranch: "moat/x"})
	var nl *NotLandedError
	if !errors.As(err, &nl) || len(nl.Files) != 1 || nl.Files[0] != "secrets/.env" {
		t.Fatalf("Land = %v; want secrets/.env in the way", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "secrets", ".env")); string(b) != "TOKEN=mine\n" || git(t, dir, "rev-parse", "main") != base || git(t, dir, "rev-parse", "moat/x") != head {
		t.Errorf("the user's file %q, main or the kept branch changed", b)
	}
	// a.txt is tracked on main: changing it is not in the way.
	dir, base, head = repo(t, "a.txt")
	if _, err := Land(t.Context(), Options{Repo: dir, Base: base, Head: head, Target: "main", KeepBranch: "moat/x"}); err != nil {
		t.Errorf("changing a tracked file: %v", err)
	}
}

// HEAD switched to another branch while the run worked: nothing lands.
func TestMergeToHeadBranchSwitched(t *testing.T) {
	dir, base, head := repo(t, "b.txt")
	git(t, dir, "checkout", "-q", "-b", "other")
	_, err := Land(t.Context(), Options{Repo: dir, Base: base, Head: head, Target: "main", KeepBranch: "moat/x"})
	if err == nil || !strings.Contains(err.Error(), "has other now") || git(t, dir, "rev-parse", "main") != base {
		t.Fatalf("Land = %v", err)
	}
	git(t, dir, "checkout", "-q", "--detach")
	if _, err := Land(t.Context(), Options{Repo: dir, Base: base, Head: head, Target: "main", KeepBranch: "moat/x"}); err == nil || !strings.Contains(err.Error(), "a detached HEAD") {
		t.Fatalf("detached: Land = %v", err)
	}
}
