package worktree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/internal/worktree/hostgit/hostgittest"
)

func TestMain(m *testing.M) { hostgittest.Main(m) }

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := hostgit.Run(context.Background(), time.Minute, dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// commit writes files (name → content) and commits them as "Test".
func commit(t testing.TB, dir, msg string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dir, "add", "-A")
	git(t, dir, "-c", "user.name=Test", "-c", "user.email=test@example.com", "commit", "-q", "-m", msg)
	return git(t, dir, "rev-parse", "HEAD")
}

// newRepo makes a repository with one commit on main and no identity.
func newRepo(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}
	git(t, dir, "init", "-q", "-b", "main")
	commit(t, dir, "initial", map[string]string{"a.txt": "one\ntwo\nthree\n", "dir/b.txt": "b\n"})
	return dir
}

func create(t testing.TB, o Options) *Worktree {
	t.Helper()
	o.Logf = func(f string, a ...any) { t.Logf("worktree: "+f, a...) }
	w, err := Create(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func branchExists(t testing.TB, repo, b string) bool {
	_, err := hostgit.Run(context.Background(), time.Minute, repo, "rev-parse", "-q", "--verify", "refs/heads/"+b)
	return err == nil
}

func worktreeCount(t testing.TB, repo string) int {
	return strings.Count(git(t, repo, "worktree", "list", "--porcelain"), "worktree ")
}

func TestTempFastForwardMergeAndClose(t *testing.T) {
	repo := newRepo(t)
	head := git(t, repo, "rev-parse", "HEAD")
	w := create(t, Options{Repo: filepath.Join(repo, "dir")}) // any dir inside works
	if !w.Temp || w.TargetBranch != "main" || w.BaseHead != head || w.Repo != repo {
		t.Fatalf("worktree %+v", w)
	}
	if !strings.HasPrefix(w.Branch, "moat/") || filepath.Dir(w.Path) != filepath.Join(repo, ".moat", "worktrees") {
		t.Fatalf("names: %s %s", w.Branch, w.Path)
	}
	if git(t, w.Path, "symbolic-ref", "--short", "HEAD") != w.Branch {
		t.Fatal("worktree does not have the temp branch checked out")
	}
	if s := git(t, repo, "status", "--porcelain"); s != "" {
		t.Fatalf(".moat/ is not ignored: %q", s)
	}
	c := commit(t, w.Path, "agent work", map[string]string{"new.txt": "hello\n"})

	res, err := w.Merge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !res.FastForward || len(res.Commits) != 1 || res.Commits[0].SHA != c || res.Commits[0].Subject != "agent work" || !res.BranchDeleted {
		t.Fatalf("merge result %+v", res)
	}
	if git(t, repo, "rev-parse", "main") != c {
		t.Fatal("main did not move")
	}
	if branchExists(t, repo, w.Branch) {
		t.Fatal("temp branch not deleted")
	}
	if p, err := w.Close(context.Background()); err != nil || p != "" {
		t.Fatalf("Close = %q, %v", p, err)
	}
	if exists(w.Path) || worktreeCount(t, repo) != 1 {
		t.Fatal("worktree not removed")
	}
	// A second run: the exclude line is not added twice.
	w2 := create(t, Options{Repo: repo})
	if _, err := w2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ex, _ := os.ReadFile(filepath.Join(repo, ".git", "info", "exclude"))
	if strings.Count(string(ex), "/.moat/worktrees/") != 1 || strings.Count(string(ex), "/.moat/.env") != 1 {
		t.Fatalf("exclude file:\n%s", ex)
	}
	if branchExists(t, repo, w2.Branch) {
		t.Fatal("temp branch without commits not deleted by Close")
	}
}

func TestRealMergeWhenHostMoved(t *testing.T) {
	repo := newRepo(t)
	w := create(t, Options{Repo: repo})
	agent := commit(t, w.Path, "agent: b", map[string]string{"dir/b.txt": "b changed\n"})
	host := commit(t, repo, "host: a", map[string]string{"a.txt": "one\ntwo\nthree\nfour\n"})

	res, err := w.Merge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.FastForward || res.Before != host || !res.BranchDeleted {
		t.Fatalf("merge result %+v", res)
	}
	parents := strings.Fields(git(t, repo, "log", "-1", "--format=%P", "main"))
	if len(parents) != 2 || parents[0] != host || parents[1] != agent {
		t.Fatalf("merge commit parents %v", parents)
	}
	if len(res.Commits) != 2 || res.Commits[0].SHA != agent || res.Commits[1].SHA != res.After {
		t.Fatalf("commits %+v", res.Commits)
	}
	// No identity is configured anywhere: the fallback one made the merge.
	if c := git(t, repo, "log", "-1", "--format=%cn <%ce>"); c != "moat agent <agent@moat.invalid>" {
		t.Fatalf("committer %q", c)
	}
	if p, err := w.Close(context.Background()); err != nil || p != "" || exists(w.Path) {
		t.Fatalf("Close = %q, %v", p, err)
	}
	if out := git(t, repo, "branch", "--list", "moat/*"); out != "" {
		t.Fatalf("moat branches left: %s", out)
	}
}

func TestMergeConflictKeepsBranchAndCommandsWork(t *testing.T) {
	repo := newRepo(t)
	git(t, repo, "config", "user.name", "Repo User")
	git(t, repo, "config", "user.email", "user@example.com")
	w := create(t, Options{Repo: repo})
	commit(t, w.Path, "agent: a", map[string]string{"a.txt": "one\nTWO agent\nthree\n"})
	host := commit(t, repo, "host: a", map[string]string{"a.txt": "one\nTWO host\nthree\n"})

	_, err := w.Merge(context.Background())
	var ce *MergeConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("want a MergeConflictError, got %v", err)
	}
	t.Log(err)
	if len(ce.Files) != 1 || ce.Files[0] != "a.txt" || !strings.Contains(err.Error(), "a.txt") || !strings.Contains(err.Error(), "git merge --no-edit "+w.Branch) {
		t.Fatalf("conflict error %+v", ce)
	}
	if git(t, repo, "rev-parse", "HEAD") != host || git(t, repo, "status", "--porcelain") != "" {
		t.Fatal("repository not restored after the conflict")
	}
	if !branchExists(t, repo, w.Branch) {
		t.Fatal("temp branch deleted after a conflict")
	}
	if p, err := w.Close(context.Background()); err != nil || p != "" {
		t.Fatalf("Close = %q, %v", p, err)
	}
	if w.KeptBranch != w.Branch || !branchExists(t, repo, w.Branch) {
		t.Fatal("Close dropped the unmerged temp branch")
	}

	// Run the commands as a user would, resolving the conflict where asked.
	for _, l := range strings.Split(ce.Fix, "\n") {
		if strings.HasPrefix(l, "# resolve") {
			os.WriteFile(filepath.Join(repo, "a.txt"), []byte("one\nTWO both\nthree\n"), 0o644)
			continue
		}
		if strings.HasPrefix(l, "#") {
			continue
		}
		out, err := exec.Command("sh", "-c", "cd "+repo+" && "+l).CombinedOutput()
		if err != nil && !strings.HasPrefix(l, "git merge") { // the merge itself stops on the conflict
			t.Fatalf("%s: %v\n%s", l, err, out)
		}
	}
	if branchExists(t, repo, w.Branch) || len(strings.Fields(git(t, repo, "log", "-1", "--format=%P"))) != 2 {
		t.Fatal("the commands did not finish the merge")
	}
}

func TestMergeRefusals(t *testing.T) {
	t.Run("uncommitted changes in the way", func(t *testing.T) {
		repo := newRepo(t)
		w := create(t, Options{Repo: repo})
		commit(t, w.Path, "agent: a", map[string]string{"a.txt": "agent\n"})
		os.WriteFile(filepath.Join(repo, "a.txt"), []byte("user edit\n"), 0o644)
		_, err := w.Merge(context.Background())
		if err == nil || !strings.Contains(err.Error(), "uncommitted changes") {
			t.Fatalf("err = %v", err)
		}
		t.Log(err)
		if b, _ := os.ReadFile(filepath.Join(repo, "a.txt")); string(b) != "user edit\n" || !branchExists(t, repo, w.Branch) {
			t.Fatal("user change or temp branch lost")
		}
		// Unrelated uncommitted changes do not stop it.
		git(t, repo, "checkout", "a.txt")
		os.WriteFile(filepath.Join(repo, "dir", "b.txt"), []byte("user edit\n"), 0o644)
		if _, err := w.Merge(context.Background()); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(repo, "dir", "b.txt")); string(b) != "user edit\n" {
			t.Fatal("user change lost")
		}
	})
	t.Run("checked-out branch changed", func(t *testing.T) {
		repo := newRepo(t)
		w := create(t, Options{Repo: repo})
		commit(t, w.Path, "agent", map[string]string{"x": "x"})
		git(t, repo, "checkout", "-q", "-b", "other")
		_, err := w.Merge(context.Background())
		if err == nil || !strings.Contains(err.Error(), "has other now") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("named branch", func(t *testing.T) {
		repo := newRepo(t)
		w := create(t, Options{Repo: repo, Branch: "feature"})
		if _, err := w.Merge(context.Background()); err == nil {
			t.Fatal("Merge of a named branch succeeded")
		}
	})
	t.Run("nothing to merge", func(t *testing.T) {
		repo := newRepo(t)
		w := create(t, Options{Repo: repo})
		res, err := w.Merge(context.Background())
		if err != nil || !res.NothingToDo || !res.BranchDeleted || branchExists(t, repo, w.Branch) {
			t.Fatalf("%+v %v", res, err)
		}
		if p, err := w.Close(context.Background()); err != nil || p != "" || exists(w.Path) {
			t.Fatalf("Close = %q, %v", p, err)
		}
	})
}

func TestDetachedHeadRefused(t *testing.T) {
	repo := newRepo(t)
	git(t, repo, "checkout", "-q", "--detach")
	_, err := Create(context.Background(), Options{Repo: repo})
	if err == nil || !strings.Contains(err.Error(), "detached") {
		t.Fatalf("err = %v", err)
	}
	// A named branch works from a detached HEAD.
	w := create(t, Options{Repo: repo, Branch: "work"})
	if w.TargetBranch != "" || w.Branch != "work" {
		t.Fatalf("%+v", w)
	}
}

func TestClosePreservesWork(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(t *testing.T, w *Worktree)
	}{
		{"modified", func(t *testing.T, w *Worktree) {
			os.WriteFile(filepath.Join(w.Path, "a.txt"), []byte("changed"), 0o644)
		}},
		{"untracked", func(t *testing.T, w *Worktree) {
			os.WriteFile(filepath.Join(w.Path, "new.txt"), []byte("new"), 0o644)
		}},
		{"locked", func(t *testing.T, w *Worktree) {
			git(t, w.Repo, "worktree", "lock", "--reason", "sync-out failed", w.Path)
		}},
		{"am in progress", func(t *testing.T, w *Worktree) {
			os.MkdirAll(filepath.Join(w.gitDir, "rebase-apply"), 0o755)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := newRepo(t)
			w := create(t, Options{Repo: repo})
			tc.do(t, w)
			p, err := w.Close(context.Background())
			if err != nil || p != w.Path || !exists(w.Path) || !branchExists(t, repo, w.Branch) || w.PreservedReason == "" {
				t.Fatalf("Close = %q, %v", p, err)
			}
			t.Log(w.PreservedReason)
		})
	}
}

func TestCloseKeepsUnmergedCommits(t *testing.T) {
	repo := newRepo(t)
	w := create(t, Options{Repo: repo})
	c := commit(t, w.Path, "agent", map[string]string{"x": "x"})
	p, err := w.Close(context.Background())
	if err != nil || p != "" || exists(w.Path) {
		t.Fatalf("Close = %q, %v", p, err)
	}
	if w.KeptBranch != w.Branch || git(t, repo, "rev-parse", w.Branch) != c {
		t.Fatal("unmerged commits were dropped")
	}

	// Commits lists what a run added; Keep keeps even an empty branch.
	w = create(t, Options{Repo: repo, Branch: "named"})
	c1 := commit(t, w.Path, "first", map[string]string{"1": "1"})
	c2 := commit(t, w.Path, "second", map[string]string{"2": "2"})
	cs, err := w.Commits(context.Background())
	if err != nil || len(cs) != 2 || cs[0] != (Commit{c1, "first"}) || cs[1] != (Commit{c2, "second"}) {
		t.Fatalf("Commits = %+v, %v", cs, err)
	}
	w = create(t, Options{Repo: repo})
	w.Keep()
	if _, err := w.Close(context.Background()); err != nil || !branchExists(t, repo, w.Branch) || w.KeptBranch == "" {
		t.Fatalf("Keep: %v", err)
	}
}

func TestCopyToWorktree(t *testing.T) {
	repo := newRepo(t)
	commit(t, repo, "ignore", map[string]string{".gitignore": "node_modules/\n"})
	os.WriteFile(filepath.Join(repo, ".env"), []byte("SECRET=1\n"), 0o600)
	os.MkdirAll(filepath.Join(repo, "node_modules", "pkg", "bin"), 0o755)
	os.WriteFile(filepath.Join(repo, "node_modules", "pkg", "bin", "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("pkg/bin/tool", filepath.Join(repo, "node_modules", "tool"))

	w := create(t, Options{Repo: filepath.Join(repo, "dir"), CopyToWorktree: []string{".env", "node_modules", "missing.txt"}})
	if len(w.Copied) != 2 || len(w.CopySkipped) != 1 || w.CopySkipped[0] != "missing.txt" {
		t.Fatalf("copied %v skipped %v", w.Copied, w.CopySkipped)
	}
	if b, err := os.ReadFile(filepath.Join(w.Path, ".env")); err != nil || string(b) != "SECRET=1\n" {
		t.Fatalf(".env: %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(w.Path, "node_modules", "pkg", "bin", "tool")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("tool: %v %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(w.Path, "node_modules", "tool")); err != nil || l != "pkg/bin/tool" {
		t.Fatalf("link: %q %v", l, err)
	}
	// The untouched copies do not make the worktree dirty.
	if p, err := w.Close(context.Background()); err != nil || p != "" {
		t.Fatalf("Close = %q, %v", p, err)
	}

	// A changed copy does.
	w = create(t, Options{Repo: repo, CopyToWorktree: []string{".env"}})
	os.WriteFile(filepath.Join(w.Path, ".env"), []byte("SECRET=2\n"), 0o600)
	if p, err := w.Close(context.Background()); err != nil || p != w.Path {
		t.Fatalf("Close = %q, %v", p, err)
	}

	for _, bad := range []string{"../x", "/etc/passwd", ".git/config", ".moat"} {
		if _, err := Create(context.Background(), Options{Repo: repo, CopyToWorktree: []string{bad}}); err == nil {
			t.Fatalf("CopyToWorktree %q accepted", bad)
		}
	}
	if n := worktreeCount(t, repo); n != 2 { // main + the preserved one
		t.Fatalf("%d worktrees: failed Creates left some behind", n)
	}
}

func TestNamedBranch(t *testing.T) {
	repo := newRepo(t)
	base := git(t, repo, "rev-parse", "HEAD")
	commit(t, repo, "later", map[string]string{"later.txt": "x"})

	w := create(t, Options{Repo: repo, Branch: "feature/x", Base: base})
	if w.Temp || w.BaseHead != base || git(t, w.Path, "rev-parse", "HEAD") != base || filepath.Base(w.Path) != "feature-x" {
		t.Fatalf("%+v", w)
	}
	if cfg := git(t, repo, "config", "--list", "--local"); strings.Contains(cfg, "branch.feature") {
		t.Fatalf("tracking config written:\n%s", cfg)
	}
	c := commit(t, w.Path, "on feature", map[string]string{"f": "f"})

	// A preserved (dirty) worktree of the branch is reused by the next run.
	if err := os.WriteFile(filepath.Join(w.Path, "wip.txt"), []byte("wip"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := w.Close(context.Background()); err != nil || p != w.Path {
		t.Fatalf("Close of a dirty worktree = %q, %v; want it preserved", p, err)
	}
	w2 := create(t, Options{Repo: repo, Branch: "feature/x"})
	if !w2.Reused || w2.Path != w.Path || w2.BaseHead != c {
		t.Fatalf("%+v", w2)
	}
	os.Remove(filepath.Join(w.Path, "wip.txt"))
	if p, err := w2.Close(context.Background()); err != nil || p != "" || !branchExists(t, repo, "feature/x") {
		t.Fatalf("Close = %q, %v", p, err)
	}
	// An existing branch is checked out as it is.
	w3 := create(t, Options{Repo: repo, Branch: "feature/x"})
	if w3.Reused || w3.BaseHead != c {
		t.Fatalf("%+v", w3)
	}
	w3.Close(context.Background())

	// A branch checked out elsewhere is refused, naming where.
	_, err := Create(context.Background(), Options{Repo: repo, Branch: "main"})
	if err == nil || !strings.Contains(err.Error(), repo) || !strings.Contains(err.Error(), "already checked out") {
		t.Fatalf("err = %v", err)
	}
	for _, bad := range []string{"a..b", "-x", "x y"} {
		if _, err := Create(context.Background(), Options{Repo: repo, Branch: bad}); err == nil {
			t.Fatalf("branch %q accepted", bad)
		}
	}
	if _, err := Create(context.Background(), Options{Repo: repo, Branch: "y", Base: "nope"}); err == nil {
		t.Fatal("bad base accepted")
	}
	if _, err := Create(context.Background(), Options{Repo: repo, Base: "main"}); err == nil {
		t.Fatal("Base without Branch accepted")
	}
}

func TestConcurrentRuns(t *testing.T) {
	repo := newRepo(t)
	const n = 5
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			w, err := Create(context.Background(), Options{Repo: repo})
			if err != nil {
				errs <- err
				return
			}
			if i%2 == 0 { // no t.Fatal off the test goroutine
				os.WriteFile(filepath.Join(w.Path, fmt.Sprintf("f%d", i)), []byte("x"), 0o644)
				for _, args := range [][]string{{"add", "-A"}, {"-c", "user.name=T", "-c", "user.email=t@x", "commit", "-q", "-m", "run"}} {
					if _, err := hostgit.Run(context.Background(), time.Minute, w.Path, args...); err != nil {
						errs <- err
						return
					}
				}
			}
			if _, err := w.Close(context.Background()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c := worktreeCount(t, repo); c != 1 {
		t.Fatalf("%d worktrees left", c)
	}
	if b := strings.Fields(git(t, repo, "branch", "--list", "moat/*")); len(b) != 3 {
		t.Fatalf("want the 3 branches with commits kept, got %v", b)
	}
}

func TestMergeKeepsBranchCheckedOutInDirtyWorktree(t *testing.T) {
	repo := newRepo(t)
	w := create(t, Options{Repo: repo})
	c := commit(t, w.Path, "agent", map[string]string{"x": "x"})
	os.WriteFile(filepath.Join(w.Path, "leftover.txt"), []byte("wip"), 0o644)
	res, err := w.Merge(context.Background())
	if err != nil || res.BranchDeleted || git(t, repo, "rev-parse", "main") != c {
		t.Fatalf("%+v %v", res, err)
	}
	if git(t, w.Path, "symbolic-ref", "--short", "HEAD") != w.Branch {
		t.Fatal("worktree detached although it has uncommitted work")
	}
	// The user deals with the leftover; Close then cleans up everything.
	os.Remove(filepath.Join(w.Path, "leftover.txt"))
	if p, err := w.Close(context.Background()); err != nil || p != "" || exists(w.Path) || branchExists(t, repo, w.Branch) {
		t.Fatalf("Close = %q, %v", p, err)
	}
}

// TestNamedBranchInUse: while one run holds a named branch, a second run
// on it is refused (it would share, and could remove, the first one's
// worktree); after Close it may go.
func TestNamedBranchInUse(t *testing.T) {
	repo := newRepo(t)
	ctx := context.Background()
	first, err := Create(ctx, Options{Repo: repo, Branch: "feature"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, Options{Repo: repo, Branch: "feature"}); err == nil || !strings.Contains(err.Error(), "in use by another moat run") {
		t.Fatalf("second Create on a branch in use: %v", err)
	}
	if _, err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := Create(ctx, Options{Repo: repo, Branch: "feature"})
	if err != nil {
		t.Fatalf("Create after the first run closed: %v", err)
	}
	second.Close(ctx)
}

// TestCopyToWorktreeRefusesTracked: a tracked path is refused with a clear
// reason, and nothing is left behind.
func TestCopyToWorktreeRefusesTracked(t *testing.T) {
	repo := newRepo(t)
	files := git(t, repo, "ls-files")
	first := strings.Split(files, "\n")[0]
	_, err := Create(context.Background(), Options{Repo: repo, CopyToWorktree: []string{first}})
	if err == nil || !strings.Contains(err.Error(), "is tracked by git") {
		t.Fatalf("CopyToWorktree of tracked %q: %v", first, err)
	}
	if n := worktreeCount(t, repo); n != 1 {
		t.Errorf("%d worktrees after the refused Create", n)
	}
}

// TestMergeUntrackedChecks: a run whose commits would replace a file git
// does not track (an ignored .env) is refused; a file the target branch
// stopped tracking meanwhile is not the run's doing and does not block
// the merge; a change under .moat/ is never merged by itself.
func TestMergeUntrackedChecks(t *testing.T) {
	t.Run("TargetUntrackedAFile", func(t *testing.T) {
		repo := newRepo(t)
		commit(t, repo, "settings", map[string]string{"settings.local": "shared\n"})
		w := create(t, Options{Repo: repo})
		commit(t, w.Path, "agent: new", map[string]string{"new.txt": "new\n"})
		git(t, repo, "rm", "-q", "--cached", "settings.local")
		commit(t, repo, "stop tracking settings.local", map[string]string{".gitignore": "settings.local\n"})
		if _, err := w.Merge(context.Background()); err != nil {
			t.Fatalf("a run that adds only new.txt was refused: %v", err)
		}
		if data, _ := os.ReadFile(filepath.Join(repo, "settings.local")); string(data) != "shared\n" {
			t.Errorf("settings.local = %q", data)
		}
	})
	t.Run("TargetUntrackedAFileTheRunChanged", func(t *testing.T) {
		repo := newRepo(t)
		commit(t, repo, "settings", map[string]string{"settings.local": "shared\n"})
		w := create(t, Options{Repo: repo})
		commit(t, w.Path, "agent: settings", map[string]string{"settings.local": "agent\n"})
		git(t, repo, "rm", "-q", "--cached", "settings.local")
		commit(t, repo, "stop tracking settings.local", map[string]string{".gitignore": "settings.local\n"})
		os.WriteFile(filepath.Join(repo, "settings.local"), []byte("user secret\n"), 0o600)
		if _, err := w.Merge(context.Background()); err == nil || !strings.Contains(err.Error(), "settings.local") {
			t.Fatalf("Merge = %v, want a refusal naming settings.local", err)
		}
		if data, _ := os.ReadFile(filepath.Join(repo, "settings.local")); string(data) != "user secret\n" {
			t.Errorf("settings.local = %q, want the user's", data)
		}
	})
	t.Run("AgentReplacesIgnoredFile", func(t *testing.T) {
		repo := newRepo(t)
		commit(t, repo, "ignore", map[string]string{".gitignore": ".env\n"})
		os.WriteFile(filepath.Join(repo, ".env"), []byte("SECRET=user\n"), 0o600)
		w := create(t, Options{Repo: repo})
		os.WriteFile(filepath.Join(w.Path, ".env"), []byte("SECRET=agent\n"), 0o600)
		git(t, w.Path, "add", "-f", ".env")
		git(t, w.Path, "-c", "user.name=Test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "agent: env")
		if _, err := w.Merge(context.Background()); err == nil || !strings.Contains(err.Error(), "it adds or changes .env") {
			t.Fatalf("Merge = %v, want a refusal naming .env", err)
		}
		if data, _ := os.ReadFile(filepath.Join(repo, ".env")); string(data) != "SECRET=user\n" {
			t.Errorf(".env = %q", data)
		}
	})
	t.Run("AgentChangesMoatDir", func(t *testing.T) {
		repo := newRepo(t)
		w := create(t, Options{Repo: repo})
		os.MkdirAll(filepath.Join(w.Path, ".moat"), 0o755)
		os.WriteFile(filepath.Join(w.Path, ".moat", ".env"), []byte("HOST_SECRET=\n"), 0o600)
		git(t, w.Path, "add", "-f", ".moat/.env")
		git(t, w.Path, "-c", "user.name=Test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "agent: env")
		if _, err := w.Merge(context.Background()); err == nil || !strings.Contains(err.Error(), ".moat/.env") {
			t.Fatalf("Merge = %v, want a refusal naming .moat/.env", err)
		}
		if exists(filepath.Join(repo, ".moat", ".env")) {
			t.Error(".moat/.env reached the user's checkout")
		}
	})
}
