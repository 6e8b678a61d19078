package gitsync

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/worktree"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/internal/worktree/hostgit/hostgittest"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/local"
)

func TestMain(m *testing.M) { hostgittest.Main(m) }

var provider = local.New(local.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

func newSandbox(t *testing.T) sandbox.Handle {
	t.Helper()
	h, err := provider.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h
}

func opts(t *testing.T) Options {
	return Options{Timeout: time.Minute, Logf: func(f string, a ...any) { t.Logf(f, a...) }}
}

// sx runs cmd in the sandbox and fails the test unless it exits 0.
func sx(t *testing.T, h sandbox.Handle, cmd string) string {
	t.Helper()
	r, err := h.Exec(t.Context(), cmd, sandbox.ExecOptions{})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("sandbox %q: %v exit %d\n%s%s", cmd, err, r.ExitCode, r.Stdout, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := hostgit.Run(context.Background(), time.Minute, dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func commitAll(t *testing.T, dir, msg string) string {
	t.Helper()
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", msg)
	return git(t, dir, "rev-parse", "HEAD")
}

// binary is content git treats as binary.
var binary = string([]byte{0, 1, 2, 3, 0xff, 0xfe, 0, 'P', 'N', 'G', 0, 10, 13, 0x80})

// setup makes a host repository (main, feature, a tag, another run's
// temporary branch), a merge-to-head worktree and a sandbox synced from it.
func setup(t *testing.T) (repo string, w *worktree.Worktree, h sandbox.Handle) {
	t.Helper()
	repo = t.TempDir()
	if r, err := filepath.EvalSymlinks(repo); err == nil {
		repo = r
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "config", "user.name", "Host User")
	git(t, repo, "config", "user.email", "host@example.com")
	write(t, repo, "a.txt", "one\ntwo\nthree\n")
	write(t, repo, "img.bin", binary)
	write(t, repo, "gone.txt", "to be deleted\n")
	write(t, repo, ".gitignore", "*.log\n")
	commitAll(t, repo, "initial")
	git(t, repo, "tag", "v1")
	git(t, repo, "checkout", "-q", "-b", "feature")
	write(t, repo, "feature.txt", "f\n")
	commitAll(t, repo, "feature work")
	git(t, repo, "checkout", "-q", "main")
	git(t, repo, "branch", "moat/20200101-000000-abcdef") // another run's
	git(t, repo, "update-ref", "refs/remotes/origin/main", "HEAD")

	w, err := worktree.Create(context.Background(), worktree.Options{Repo: repo})
	if err != nil {
		t.Fatal(err)
	}
	h = newSandbox(t)
	if err := SyncIn(t.Context(), w.Path, h, opts(t)); err != nil {
		t.Fatal(err)
	}
	return repo, w, h
}

func TestSyncIn(t *testing.T) {
	repo, w, h := setup(t)
	t.Logf("local sandbox isolated with bwrap: %v", provider.Isolated())
	if got := sx(t, h, "git rev-parse HEAD"); got != w.BaseHead {
		t.Fatalf("sandbox HEAD %s, host %s", got, w.BaseHead)
	}
	if got := sx(t, h, "git symbolic-ref --short HEAD"); got != w.Branch {
		t.Fatalf("sandbox branch %s, want %s", got, w.Branch)
	}
	branches := strings.Fields(sx(t, h, "git for-each-ref --format='%(refname:short)' refs/heads"))
	if !slices.Equal(branches, []string{"feature", "main", w.Branch}) {
		t.Fatalf("sandbox branches %v", branches)
	}
	if sx(t, h, "git rev-parse feature") != git(t, repo, "rev-parse", "feature") || sx(t, h, "git tag") != "v1" {
		t.Fatal("branch or tag missing")
	}
	if sx(t, h, "git rev-parse "+SyncBaseRef) != w.BaseHead || sx(t, h, "git remote") != "" || sx(t, h, "git rev-parse origin/main") != w.BaseHead {
		t.Fatal("sync-base or remotes wrong")
	}
	if id := sx(t, h, "git config user.name; git config user.email"); id != "Host User\nhost@example.com" {
		t.Fatalf("identity %q", id)
	}
	if ex := sx(t, h, "cat .git/info/exclude"); !strings.Contains(ex, "/.moat/") {
		t.Fatalf("exclude:\n%s", ex)
	}
	if st := sx(t, h, "git status --porcelain"); st != "" || sx(t, h, "cat a.txt") != "one\ntwo\nthree" {
		t.Fatalf("sandbox not a clean checkout: %q", st)
	}
	// Again at the same HEAD (a retry whose first answer was lost): done.
	if err := SyncIn(t.Context(), w.Path, h, opts(t)); err != nil {
		t.Fatalf("second SyncIn at the same HEAD: %v", err)
	}
	// A repository that moved on is not overwritten.
	sx(t, h, `git commit -q --allow-empty -m moved`)
	if err := SyncIn(t.Context(), w.Path, h, opts(t)); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Fatalf("SyncIn over a repository that moved on: %v", err)
	}

	// A detached worktree, into a WorkDir that already has a file.
	det := filepath.Join(t.TempDir(), "det")
	git(t, repo, "worktree", "add", "-q", "--detach", det, "feature")
	write(t, det, "feature.txt", "uncommitted host change\n") // stays on the host
	h2 := newSandbox(t)
	sx(t, h2, "echo SECRET=1 > .env")
	if err := SyncIn(t.Context(), det, h2, opts(t)); err != nil {
		t.Fatal(err)
	}
	if sx(t, h2, "git rev-parse HEAD") != git(t, repo, "rev-parse", "feature") || sx(t, h2, "cat .env") != "SECRET=1" || sx(t, h2, "cat feature.txt") != "f" {
		t.Fatal("detached sync-in wrong")
	}
	if r, _ := h2.Exec(t.Context(), "git symbolic-ref -q HEAD", sandbox.ExecOptions{}); r.ExitCode == 0 {
		t.Fatal("sandbox HEAD is not detached")
	}
}

func TestSyncOutCommitsLandAndMerge(t *testing.T) {
	repo, w, h := setup(t)
	sx(t, h, `printf 'one\nTWO\nthree\n' > a.txt && git commit -qam 'change a'`)
	sx(t, h, `printf '\000\001new binary\377' > img.bin && git commit -qam 'binary update'`)
	sx(t, h, `echo x > x.txt && git add x.txt && git commit -q --author='Ann Agent <ann@agent.example>' -F - <<'EOF'
[WIP] subject with brackets

Body paragraph.
---
A line of dashes above, which git am would cut.
From: not a header
EOF`)
	want := sx(t, h, "git log -3 --reverse --format='%an|%ae|%ad|%B' --date=raw")

	res, err := SyncOut(t.Context(), w.Path, h, opts(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Commits != 3 || res.Failed != "" || res.PatchDir != "" || res.Uncommitted || len(res.Untracked) != 0 {
		t.Fatalf("result %+v", res)
	}
	if got := git(t, w.Path, "log", "-3", "--reverse", "--format=%an|%ae|%ad|%B", "--date=raw"); got != want {
		t.Fatalf("commits changed on the way:\n got %q\nwant %q", got, want)
	}
	if c := git(t, w.Path, "log", "-1", "--format=%cn"); c != "Host User" {
		t.Fatalf("committer %q", c)
	}
	if read(t, w.Path, "img.bin") != "\x00\x01new binary\xff" {
		t.Fatal("binary file wrong")
	}
	if st := git(t, w.Path, "status", "--porcelain"); st != "" {
		t.Fatalf("worktree not clean: %q", st)
	}
	if _, err := os.Stat(filepath.Join(repo, ".moat", "patches")); !os.IsNotExist(err) {
		t.Fatalf("patch dir left: %v", err)
	}
	if sx(t, h, "git rev-parse "+SyncBaseRef) != sx(t, h, "git rev-parse HEAD") {
		t.Fatal("sync-base not advanced")
	}

	// The host moved meanwhile: a real merge.
	write(t, repo, "host.txt", "host\n")
	commitAll(t, repo, "host work")
	mr, err := w.Merge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if mr.FastForward || len(mr.Commits) != 4 || mr.Commits[0].Subject != "change a" {
		t.Fatalf("merge %+v", mr)
	}
	if p, err := w.Close(context.Background()); err != nil || p != "" {
		t.Fatalf("Close = %q, %v", p, err)
	}
	if read(t, repo, "x.txt") != "x\n" || git(t, repo, "branch", "--list", w.Branch) != "" {
		t.Fatal("merge result wrong")
	}
}

func TestSyncOutWorkingState(t *testing.T) {
	_, w, h := setup(t)
	sx(t, h, `printf 'one\ntwo\nthree\nfour\n' > a.txt
printf 'b\000i\001n\377' > img.bin
git rm -q gone.txt
echo staged > staged.txt && git add staged.txt
mkdir -p sub/dir && echo u > 'sub/dir/naïve file.txt'
printf 'n\n' > "$(printf 'new\nline')"
printf '#!/bin/sh\necho hi\n' > run.sh && chmod +x run.sh
ln -s sub/dir link
echo ignored > debug.log
mkdir -p .moat && echo no > .moat/x`)

	res, err := SyncOut(t.Context(), w.Path, h, opts(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Commits != 0 || !res.Uncommitted || res.Failed != "" || res.PatchDir != "" {
		t.Fatalf("result %+v", res)
	}
	slices.Sort(res.Untracked)
	if want := []string{"link", "new\nline", "run.sh", "sub/dir/naïve file.txt"}; !slices.Equal(res.Untracked, want) {
		t.Fatalf("untracked %q, want %q", res.Untracked, want)
	}
	if read(t, w.Path, "a.txt") != "one\ntwo\nthree\nfour\n" || read(t, w.Path, "img.bin") != "b\x00i\x01n\xff" ||
		read(t, w.Path, "staged.txt") != "staged\n" || read(t, w.Path, "sub/dir/naïve file.txt") != "u\n" || read(t, w.Path, "new\nline") != "n\n" {
		t.Fatal("content wrong")
	}
	if _, err := os.Lstat(filepath.Join(w.Path, "gone.txt")); !os.IsNotExist(err) {
		t.Fatal("deleted file still there")
	}
	if fi, err := os.Stat(filepath.Join(w.Path, "run.sh")); err != nil || fi.Mode()&0o100 == 0 {
		t.Fatalf("run.sh not executable: %v", err)
	}
	if l, err := os.Readlink(filepath.Join(w.Path, "link")); err != nil || l != "sub/dir" {
		t.Fatalf("link %q %v", l, err)
	}
	for _, p := range []string{"debug.log", ".moat/x"} {
		if _, err := os.Lstat(filepath.Join(w.Path, p)); !os.IsNotExist(err) {
			t.Fatalf("%s came out", p)
		}
	}
	// The work is uncommitted: the worktree is kept.
	if p, err := w.Close(context.Background()); err != nil || p != w.Path {
		t.Fatalf("Close = %q, %v", p, err)
	}
}

func TestRepeatedSyncOut(t *testing.T) {
	_, w, h := setup(t)
	// Round 1: a commit, an uncommitted edit, an untracked file.
	sx(t, h, `echo c1 > c1.txt && git add c1.txt && git commit -qm c1 && printf 'one\ntwo\nthree\nedit\n' > a.txt && echo n > n.txt`)
	res, err := SyncOut(t.Context(), w.Path, h, opts(t))
	if err != nil || res.Commits != 1 || !res.Uncommitted || len(res.Untracked) != 1 || res.Failed != "" {
		t.Fatalf("round 1: %+v %v", res, err)
	}
	// Round 2: the edit and the file get committed, a new edit is left.
	sx(t, h, `git add -A && git commit -qm c2 && echo b > b.txt && git add b.txt && git commit -qm c3 && echo more >> b.txt`)
	res, err = SyncOut(t.Context(), w.Path, h, opts(t))
	if err != nil || res.Commits != 2 || !res.Uncommitted || len(res.Untracked) != 0 || res.Failed != "" {
		t.Fatalf("round 2: %+v %v", res, err)
	}
	// Round 3: nothing new; the same uncommitted edit comes again.
	res, err = SyncOut(t.Context(), w.Path, h, opts(t))
	if err != nil || res.Commits != 0 || !res.Uncommitted || res.Failed != "" {
		t.Fatalf("round 3: %+v %v", res, err)
	}
	subjects := git(t, w.Path, "log", "--format=%s", w.BaseHead+"..HEAD")
	if subjects != "c3\nc2\nc1" {
		t.Fatalf("host commits:\n%s", subjects)
	}
	if st := git(t, w.Path, "status", "--porcelain"); st != "M b.txt" || read(t, w.Path, "b.txt") != "b\nmore\n" {
		t.Fatalf("worktree state %q", st)
	}
	// Round 4: a host edit to the same file is kept; the sync reports failure.
	write(t, w.Path, "b.txt", "b\nmore\nhost\n")
	sx(t, h, `echo evenmore >> b.txt`)
	res, err = SyncOut(t.Context(), w.Path, h, opts(t))
	if err != nil || res.Failed != StepUncommitted || res.PatchDir == "" {
		t.Fatalf("round 4: %+v %v", res, err)
	}
	if read(t, w.Path, "b.txt") != "b\nmore\nhost\n" {
		t.Fatal("host edit lost")
	}
	if _, err := os.Stat(filepath.Join(res.PatchDir, "changes.patch")); err != nil {
		t.Fatal(err)
	}
}

func TestConflictKeepsPatchesAndRecoveryWorks(t *testing.T) {
	repo, w, h := setup(t)
	sx(t, h, `printf 'one\nAGENT\nthree\n' > a.txt && git commit -qam 'agent edits a'`)
	sx(t, h, `echo z > z.txt && git add z.txt && git commit -qm 'agent adds z'`)
	sx(t, h, `echo wip >> z.txt && echo u > untracked.txt`)
	// The host worktree moved: a conflicting commit.
	write(t, w.Path, "a.txt", "one\nHOST\nthree\n")
	hostCommit := commitAll(t, w.Path, "host edits a")

	res, err := SyncOut(t.Context(), w.Path, h, opts(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recovery:\n%s", res.Recovery)
	if res.Failed != StepCommits || res.PatchDir == "" || res.Commits != 0 || !strings.Contains(res.Recovery, "git am --continue") {
		t.Fatalf("result %+v", res)
	}
	for _, f := range []string{"0001-agent-edits-a.patch", "0002-agent-adds-z.patch", "changes.patch", "untracked/untracked.txt"} {
		if _, err := os.Stat(filepath.Join(res.PatchDir, f)); err != nil {
			t.Fatalf("not saved: %v", err)
		}
	}
	if !strings.HasPrefix(res.PatchDir, filepath.Join(repo, ".moat", "patches")) {
		t.Fatalf("patch dir %s", res.PatchDir)
	}
	if sx(t, h, "git rev-parse "+SyncBaseRef) != w.BaseHead {
		t.Fatal("sync-base moved although git am failed")
	}
	// The worktree is kept by Close: locked, mid-am.
	if p, err := w.Close(context.Background()); err != nil || p != w.Path {
		t.Fatalf("Close = %q, %v", p, err)
	}

	// Resolve as a user would, then run the recovery commands as printed.
	write(t, w.Path, "a.txt", "one\nHOST+AGENT\nthree\n")
	cmd := exec.Command("sh", "-e", "-c", res.Recovery)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("recovery commands failed: %v\n%s", err, out)
	}
	if s := git(t, w.Path, "log", "--format=%s", hostCommit+"..HEAD"); s != "agent adds z\nagent edits a" {
		t.Fatalf("commits after recovery:\n%s", s)
	}
	if read(t, w.Path, "z.txt") != "z\nwip\n" || read(t, w.Path, "untracked.txt") != "u\n" || read(t, w.Path, "a.txt") != "one\nHOST+AGENT\nthree\n" {
		t.Fatal("recovery result wrong")
	}
	if _, err := os.Stat(res.PatchDir); !os.IsNotExist(err) {
		t.Fatal("patch dir not removed by the recovery commands")
	}
	if _, err := os.Stat(filepath.Join(w.Path, ".git")); err != nil {
		t.Fatal(err)
	}
	if out := git(t, repo, "worktree", "list", "--porcelain"); strings.Contains(out, "locked") {
		t.Fatalf("still locked:\n%s", out)
	}
}

func TestRecoveryWhenAmCannotStart(t *testing.T) {
	_, w, h := setup(t)
	sx(t, h, `echo q > q.txt && git add q.txt && git commit -qm q`)
	// A git am already stopped in the worktree.
	if err := os.MkdirAll(filepath.Join(git(t, w.Path, "rev-parse", "--absolute-git-dir"), "rebase-apply"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := SyncOut(t.Context(), w.Path, h, opts(t))
	if err != nil || res.Failed != StepCommits || !strings.Contains(res.Recovery, "/[0-9]*.patch") {
		t.Fatalf("%+v %v", res, err)
	}
	os.RemoveAll(filepath.Join(git(t, w.Path, "rev-parse", "--absolute-git-dir"), "rebase-apply"))
	if out, err := exec.Command("sh", "-e", "-c", res.Recovery).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if git(t, w.Path, "log", "-1", "--format=%s") != "q" {
		t.Fatal("commit not applied by the recovery commands")
	}
}

func TestNothingToSync(t *testing.T) {
	repo, w, h := setup(t)
	res, err := SyncOut(t.Context(), w.Path, h, opts(t))
	if err != nil || res.Commits != 0 || res.Uncommitted || len(res.Untracked) != 0 || res.Failed != "" {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(repo, ".moat", "patches")); !os.IsNotExist(err) {
		t.Fatal("patch dir made")
	}
}

func TestUntrackedReplacesHostFileKeepingIt(t *testing.T) {
	_, w, h := setup(t)
	write(t, w.Path, "notes.txt", "host notes\n")
	sx(t, h, `echo sandbox notes > notes.txt && echo same > same.txt`)
	write(t, w.Path, "same.txt", "same\n")
	res, err := SyncOut(t.Context(), w.Path, h, opts(t))
	if err != nil || res.Failed != "" || !slices.Equal(res.Replaced, []string{"notes.txt"}) || res.PatchDir == "" {
		t.Fatalf("%+v %v", res, err)
	}
	if read(t, w.Path, "notes.txt") != "sandbox notes\n" || read(t, res.PatchDir, "replaced/notes.txt") != "host notes\n" {
		t.Fatal("replace/backup wrong")
	}
}

func TestSandboxFailureIsAnError(t *testing.T) {
	_, w, h := setup(t)
	h.Close(context.Background())
	if _, err := SyncOut(t.Context(), w.Path, h, opts(t)); err == nil {
		t.Fatal("SyncOut on a closed sandbox succeeded")
	}
	// A sandbox that was never synced from this worktree.
	h2 := newSandbox(t)
	sx(t, h2, "git init -q && git -c user.name=x -c user.email=y commit -q --allow-empty -m x")
	_, err := SyncOut(t.Context(), w.Path, h2, opts(t))
	if err == nil || !strings.Contains(err.Error(), "unknown in the sandbox") {
		t.Fatalf("err = %v", err)
	}
}

// stuckHandle never finishes format-patch, like a sandbox that hangs.
type stuckHandle struct{ sandbox.Handle }

func (h stuckHandle) Exec(ctx context.Context, cmd string, o sandbox.ExecOptions) (sandbox.ExecResult, error) {
	if strings.Contains(cmd, "format-patch") {
		<-ctx.Done()
		return sandbox.ExecResult{}, ctx.Err()
	}
	return h.Handle.Exec(ctx, cmd, o)
}

func TestStepTimeout(t *testing.T) {
	_, w, h := setup(t)
	sx(t, h, "echo q > q.txt && git add q.txt && git commit -qm q")
	start := time.Now()
	// Every step gets the timeout, not only the stuck one: leave the
	// others room on a slow machine.
	_, err := SyncOut(t.Context(), w.Path, stuckHandle{h}, Options{Timeout: 5 * time.Second})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "format-patch") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("took %v", d)
	}
}

// countingHandle counts CopyOut calls: each is a round trip to the sandbox.
type countingHandle struct {
	sandbox.Handle
	copyOuts atomic.Int32
}

func (c *countingHandle) CopyOut(ctx context.Context, sandboxPath, hostPath string) error {
	c.copyOuts.Add(1)
	return c.Handle.CopyOut(ctx, sandboxPath, hostPath)
}

// TestManyUntrackedFilesComeOutTogether: 200 untracked files come out in a
// handful of round trips, not one each, with their content and modes.
func TestManyUntrackedFilesComeOutTogether(t *testing.T) {
	_, w, h := setup(t)
	sx(t, h, `mkdir -p gen && i=0; while [ $i -lt 200 ]; do echo "file $i" > "gen/f $i.txt"; i=$((i+1)); done; printf '#!/bin/sh\n' > gen/tool.sh && chmod +x gen/tool.sh`)
	ch := &countingHandle{Handle: h}
	res, err := SyncOut(t.Context(), w.Path, ch, opts(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Untracked) != 201 {
		t.Fatalf("%d untracked files came out, want 201", len(res.Untracked))
	}
	if n := ch.copyOuts.Load(); n > 10 {
		t.Errorf("%d CopyOut round trips for 201 files", n)
	}
	if read(t, w.Path, "gen/f 199.txt") != "file 199\n" {
		t.Error("content wrong")
	}
	if fi, err := os.Stat(filepath.Join(w.Path, "gen", "tool.sh")); err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("tool.sh lost its exec bit: %v", err)
	}
}
