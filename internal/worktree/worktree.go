// Package worktree makes the host git worktree a moat run works in, merges
// its commits back and cleans up after it.
//
// Two branch strategies:
//
//   - merge-to-head (Options.Branch ""): the worktree gets a fresh temporary
//     branch moat/<YYYYMMDD-HHMMSS>-<6 hex> started at the HEAD of the branch
//     checked out in the repository (the target). Merge merges it into the
//     target with a real "git merge" and deletes it.
//   - named branch: the worktree checks out Options.Branch, made from
//     Options.Base when it does not exist yet. Nothing is merged.
//
// Worktrees live in <main working tree>/.moat/worktrees/<name>; ".moat/" is
// hidden from git through .git/info/exclude, never through .gitignore. Every
// worktree or branch change runs under a repository-wide lock, so concurrent
// moat runs in one repository do not race. All git commands go through
// package hostgit (LC_ALL=C, no prompts, a timeout on each, no global config
// writes, no hook or other program the repository's configuration names).
// Merge refuses to let the run's commits replace files git does not track
// in the repository (git itself silently replaces ignored ones, such as
// .env).
//
// Work is never thrown away: Close keeps a worktree with uncommitted changes,
// an unfinished git operation or a lock (sync-out locks it when it fails),
// and keeps a temporary branch holding commits that are merged nowhere.
package worktree

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/worktree/hostgit"
)

// Options configure Create.
type Options struct {
	// Repo is a directory inside the host repository; its top level is
	// used. When it is inside a linked worktree, that worktree's checked-out
	// branch is the merge target.
	Repo string

	// Branch selects the named-branch strategy: the worktree checks out this
	// branch, created from Base when it does not exist. "" selects
	// merge-to-head with a temporary branch.
	Branch string

	// Base is the start point of a new named branch; "" means HEAD. It must
	// be empty for merge-to-head, which always starts at HEAD.
	Base string

	// CopyToWorktree lists paths relative to the repository's top level
	// (not the worktree) to copy into the new worktree: untracked or ignored
	// files such as .env or node_modules that a checkout does not bring.
	// Directories are copied whole; symbolic links are copied as links.
	// Missing paths are skipped and listed in Worktree.CopySkipped.
	CopyToWorktree []string

	// Timeout bounds each git command and each wait for the repository
	// lock. 0 means hostgit.DefaultTimeout (2 minutes).
	Timeout time.Duration

	// Logf, when set, receives progress and warnings.
	Logf func(format string, args ...any)
}

// Worktree is one host worktree made by Create.
type Worktree struct {
	Path         string // <main working tree>/.moat/worktrees/<name>
	Branch       string // moat/<YYYYMMDD-HHMMSS>-<6hex> when Temp, else the named branch
	Temp         bool   // merge-to-head with a temporary branch
	TargetBranch string // branch checked out in Repo at creation ("" when detached and not Temp)
	BaseHead     string // commit the worktree started from
	Repo         string // top level of Options.Repo: where TargetBranch is checked out and Merge runs

	Reused      bool     // a named branch's existing moat worktree was reused
	Copied      []string // CopyToWorktree entries copied
	CopySkipped []string // CopyToWorktree entries missing in the repository

	// KeptBranch is set by Close when it kept the temporary branch (it
	// holds commits merged nowhere, or Keep was called).
	KeptBranch string
	// PreservedReason says why Close kept the worktree ("" when removed).
	PreservedReason string

	commonDir string
	gitDir    string // the worktree's own git directory
	timeout   time.Duration
	logf      func(format string, args ...any)
	merged    bool
	closed    bool
	keep      bool
	inUse     func()             // releases the named branch's in-use lock
	copies    map[string]fileSig // what CopyToWorktree wrote, by slash path
}

// Commit is one commit that landed.
type Commit struct{ SHA, Subject string }

// MergeResult says what Merge did.
type MergeResult struct {
	Commits       []Commit // commits new on TargetBranch, oldest first (the merge commit included)
	Before, After string   // TargetBranch before and after
	FastForward   bool     // no merge commit was needed
	NothingToDo   bool     // the temporary branch had no commits
	BranchDeleted bool     // the temporary branch is gone
}

// MergeConflictError is returned by Merge when the merge stopped on
// conflicts. The merge was aborted; the repository is as it was and the
// temporary branch is kept.
type MergeConflictError struct {
	Repo, Target, Branch string
	Files                []string // conflicting paths
	Fix                  string   // shell commands (with # comments) to finish the merge by hand
}

func (e *MergeConflictError) Error() string {
	return fmt.Sprintf("merging %s into %s in %s stopped on conflicts in %s; the merge was aborted, your repository is unchanged and %s is kept. To finish by hand:\n%s",
		e.Branch, e.Target, e.Repo, strings.Join(e.Files, ", "), e.Branch, e.Fix)
}

// worktreeConfig are the -c options of every worktree/branch command: no
// tracking setup, so no concurrent writes to .git/config.
var worktreeConfig = []string{"-c", "branch.autoSetupMerge=false", "-c", "push.autoSetupRemote=false"}

func (w *Worktree) git(ctx context.Context, dir string, args ...string) (string, error) {
	return hostgit.Run(ctx, w.timeout, dir, args...)
}

func (w *Worktree) line(ctx context.Context, dir string, args ...string) (string, error) {
	return hostgit.Line(ctx, w.timeout, dir, args...)
}

func (w *Worktree) log(format string, args ...any) {
	if w.logf != nil {
		w.logf(format, args...)
	}
}

// lock takes the repository lock, bounded by the timeout.
func (w *Worktree) lock(ctx context.Context) (func(), error) {
	lctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	return hostgit.Lock(lctx, w.commonDir)
}

// Create makes the worktree. Nothing is left behind when it fails.
func Create(ctx context.Context, o Options) (*Worktree, error) {
	if o.Repo == "" {
		return nil, errors.New("worktree: Options.Repo is empty")
	}
	if o.Branch == "" && o.Base != "" {
		return nil, fmt.Errorf("worktree: Base %q needs a named Branch; merge-to-head always starts at HEAD", o.Base)
	}
	w := &Worktree{timeout: o.Timeout, logf: o.Logf, Temp: o.Branch == ""}
	if w.timeout <= 0 {
		w.timeout = hostgit.DefaultTimeout
	}
	repo, err := hostgit.Locate(ctx, w.timeout, o.Repo)
	if err != nil {
		return nil, fmt.Errorf("worktree: %w", err)
	}
	w.Repo, w.commonDir = repo.TopLevel, repo.CommonDir

	if err := w.create(ctx, repo, o); err != nil {
		w.releaseInUse()
		return nil, fmt.Errorf("worktree: %w", err)
	}
	if err := w.copyIn(ctx, o.CopyToWorktree); err != nil {
		if !w.Reused {
			w.undo(context.WithoutCancel(ctx))
		}
		w.releaseInUse()
		return nil, fmt.Errorf("worktree: copying into %s: %w", w.Path, err)
	}
	return w, nil
}

// create does the git part of Create under the repository lock.
func (w *Worktree) create(ctx context.Context, repo hostgit.Repo, o Options) error {
	unlock, err := w.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := hostgit.EnsureExcluded(repo.CommonDir); err != nil {
		return err
	}
	if _, err := w.git(ctx, w.Repo, "worktree", "prune"); err != nil {
		return err
	}
	target, err := w.line(ctx, w.Repo, "symbolic-ref", "-q", "--short", "HEAD")
	if err != nil && hostgit.ExitCode(err) != 1 { // 1: detached
		return err
	}
	w.TargetBranch = target
	head, err := w.line(ctx, w.Repo, "rev-parse", "-q", "--verify", "HEAD^{commit}")
	if err != nil && hostgit.ExitCode(err) != 1 {
		return err
	}
	parent := filepath.Join(repo.MainRoot, hostgit.MoatDir, "worktrees")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}

	if w.Temp {
		if target == "" {
			return fmt.Errorf("HEAD is detached in %s: merge-to-head needs a checked-out branch to merge into; check out a branch or use a named branch", w.Repo)
		}
		if head == "" {
			return fmt.Errorf("branch %s in %s has no commits yet; make a first commit before running moat", target, w.Repo)
		}
		name := time.Now().Format("20060102-150405") + "-" + randHex(3)
		w.Branch = "moat/" + name
		w.Path = filepath.Join(parent, name)
		w.BaseHead = head
		args := append(append([]string{}, worktreeConfig...), "worktree", "add", "-q", "-b", w.Branch, w.Path, head)
		if _, err := w.git(ctx, w.Repo, args...); err != nil {
			return err
		}
		return w.readGitDir(ctx)
	}

	branch, err := w.line(ctx, w.Repo, "check-ref-format", "--branch", o.Branch)
	if err != nil || strings.HasPrefix(o.Branch, "-") {
		return fmt.Errorf("%q is not a valid branch name", o.Branch)
	}
	w.Branch = branch
	// A run holds its named branch until Close, so a second run on it fails
	// here instead of sharing (and one day removing) the first one's worktree.
	ictx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	sum := sha256.Sum256([]byte(branch)) // distinct for feature/x and feature-x
	release, lerr := hostgit.LockFile(ictx, filepath.Join(w.commonDir, "moat-inuse-"+hex.EncodeToString(sum[:8])+".lock"))
	cancel()
	if lerr != nil {
		return fmt.Errorf("branch %s is in use by another moat run in this repository: wait for it to finish, or choose another branch", branch)
	}
	w.inUse = release
	wts, err := w.list(ctx)
	if err != nil {
		return err
	}
	for _, e := range wts {
		if e.Branch != "refs/heads/"+branch {
			continue
		}
		if !isUnder(e.Path, parent) {
			return fmt.Errorf("branch %s is already checked out in the worktree at %s; git allows a branch in one worktree only: check out another branch there, or choose another branch name", branch, e.Path)
		}
		w.Path, w.Reused = e.Path, true
		if w.BaseHead, err = w.line(ctx, w.Path, "rev-parse", "HEAD"); err != nil {
			return err
		}
		w.log("reusing the worktree of branch %s at %s", branch, w.Path)
		return w.readGitDir(ctx)
	}
	w.Path = filepath.Join(parent, sanitize(branch))
	if _, err := os.Lstat(w.Path); err == nil {
		w.Path += "-" + randHex(3)
	}
	existing, err := w.line(ctx, w.Repo, "rev-parse", "-q", "--verify", "refs/heads/"+branch)
	if err != nil && hostgit.ExitCode(err) != 1 {
		return err
	}
	args := append(append([]string{}, worktreeConfig...), "worktree", "add", "-q")
	if existing != "" {
		w.BaseHead = existing
		args = append(args, w.Path, branch)
	} else {
		base := o.Base
		if base == "" {
			base = "HEAD"
		}
		sha, err := w.line(ctx, w.Repo, "rev-parse", "-q", "--verify", "--end-of-options", base+"^{commit}")
		if err != nil || sha == "" {
			return fmt.Errorf("base %q is not a commit in %s", base, w.Repo)
		}
		w.BaseHead = sha
		args = append(args, "-b", branch, w.Path, sha)
	}
	if _, err := w.git(ctx, w.Repo, args...); err != nil {
		return err
	}
	return w.readGitDir(ctx)
}

func (w *Worktree) readGitDir(ctx context.Context) error {
	d, err := w.line(ctx, w.Path, "rev-parse", "--absolute-git-dir")
	if err != nil {
		return err
	}
	w.gitDir = filepath.Clean(filepath.FromSlash(d))
	return nil
}

// undo removes what a failed Create made.
func (w *Worktree) undo(ctx context.Context) {
	defer w.releaseInUse()
	unlock, err := w.lock(ctx)
	if err != nil {
		return
	}
	defer unlock()
	_, _ = w.git(ctx, w.Repo, "worktree", "remove", "--force", w.Path)
	_, _ = w.git(ctx, w.Repo, "worktree", "prune")
	if w.Temp {
		_, _ = w.git(ctx, w.Repo, "branch", "-D", w.Branch)
	}
}

// Merge merges the temporary branch into TargetBranch in Repo with a real
// "git merge --no-edit" (fast-forward when possible, a merge commit when the
// target moved). On success, and when the branch had no commits, the
// worktree is detached and the temporary branch deleted. On conflicts the
// merge is aborted, the branch kept, and a *MergeConflictError returned.
func (w *Worktree) Merge(ctx context.Context) (MergeResult, error) {
	var res MergeResult
	if !w.Temp {
		return res, fmt.Errorf("worktree: Merge is for merge-to-head runs; branch %s is a named branch and stays as it is", w.Branch)
	}
	if w.merged {
		return res, fmt.Errorf("worktree: %s was already merged", w.Branch)
	}
	unlock, err := w.lock(ctx)
	if err != nil {
		return res, fmt.Errorf("worktree: merge: %w", err)
	}
	defer unlock()

	cur, err := w.line(ctx, w.Repo, "symbolic-ref", "-q", "--short", "HEAD")
	if err != nil && hostgit.ExitCode(err) != 1 {
		return res, fmt.Errorf("worktree: merge: %w", err)
	}
	if cur != w.TargetBranch {
		now := cur
		if now == "" {
			now = "a detached HEAD"
		}
		return res, fmt.Errorf("worktree: not merging %s: %s had %s checked out when the run started and has %s now; merge by hand with:\n  cd %s\n  git checkout %s\n  git merge --no-edit %s",
			w.Branch, w.Repo, w.TargetBranch, now, shell.Quote(w.Repo), shell.Quote(w.TargetBranch), shell.Quote(w.Branch))
	}
	if exists(w.Path) {
		if why := w.blocked(); why != "" {
			return res, fmt.Errorf("worktree: not merging %s: the worktree %s %s; finish that first (see the sync-out recovery commands)", w.Branch, w.Path, why)
		}
	}
	tip, err := w.line(ctx, w.Repo, "rev-parse", "--verify", "refs/heads/"+w.Branch)
	if err != nil {
		return res, fmt.Errorf("worktree: merge: the temporary branch is gone: %w", err)
	}
	n, err := w.count(ctx, w.BaseHead+".."+tip)
	if err != nil {
		return res, fmt.Errorf("worktree: merge: %w", err)
	}
	if res.Before, err = w.line(ctx, w.Repo, "rev-parse", "HEAD"); err != nil {
		return res, fmt.Errorf("worktree: merge: %w", err)
	}
	if n == 0 {
		res.NothingToDo, res.After = true, res.Before
		w.merged = true
		w.log("%s has no new commits: nothing to merge", w.Branch)
		return res, w.dropBranchIfClean(ctx, &res, true)
	}

	clash, err := w.inTheWay(ctx, tip)
	if err != nil {
		return res, fmt.Errorf("worktree: merge: %w", err)
	}
	if len(clash) > 0 {
		return res, fmt.Errorf("worktree: refusing to merge %s into %s: it adds or changes %s, where %s has files git does not track (git would replace ignored ones, such as .env, without asking); nothing was changed and %s is kept. Move those files away, then run:\n  cd %s\n  git merge --no-edit %s",
			w.Branch, w.TargetBranch, strings.Join(clash, ", "), w.Repo, w.Branch, shell.Quote(w.Repo), shell.Quote(w.Branch))
	}
	// moat runs the hooks of .moat/config.toml on this machine and passes
	// the host's values of the keys .moat/.env names into sandboxes: a
	// change under .moat/ from the sandbox is a person's to accept, never
	// merged on its own.
	touched, err := w.git(ctx, w.Repo, "diff", "--name-only", "-z", w.BaseHead, tip, "--", ProtectedDir)
	if err != nil {
		return res, fmt.Errorf("worktree: merge: %w", err)
	}
	if files := hostgit.SplitZ(touched); len(files) > 0 {
		return res, fmt.Errorf("worktree: refusing to merge %s into %s by itself: it changes %s, and moat's files there decide what runs on your machine (hooks) and which of your secrets reach a sandbox (.env); nothing was changed and %s is kept. Review the change, then merge by hand:\n  cd %s\n  git diff %s %s -- %s\n  git merge --no-edit %s",
			w.Branch, w.TargetBranch, strings.Join(files, ", "), w.Branch, shell.Quote(w.Repo), w.BaseHead[:12], shell.Quote(w.Branch), ProtectedDir, shell.Quote(w.Branch))
	}
	id, err := hostgit.ReadIdentity(ctx, w.timeout, w.Repo)
	if err != nil {
		return res, fmt.Errorf("worktree: merge: %w", err)
	}
	args := append(id.Args(), "merge", "--no-edit", "--no-autostash")
	if ff, _ := w.line(ctx, w.Repo, "config", "--get", "merge.ff"); ff == "only" {
		args = append(args, "--ff") // a moved target needs a merge commit
	}
	args = append(args, w.Branch)
	w.log("merging %s (%d commit(s)) into %s", w.Branch, n, w.TargetBranch)
	if _, merr := w.git(ctx, w.Repo, args...); merr != nil {
		return res, w.mergeFailed(ctx, merr)
	}
	if res.After, err = w.line(ctx, w.Repo, "rev-parse", "HEAD"); err != nil {
		return res, fmt.Errorf("worktree: merge: %w", err)
	}
	res.FastForward = res.After == tip
	w.merged = true
	if res.Commits, err = w.commits(ctx, res.Before, res.After); err != nil {
		return res, fmt.Errorf("worktree: merge: listing the merged commits: %w", err)
	}
	return res, w.dropBranchIfClean(ctx, &res, false)
}

// ProtectedDir holds moat's project files: config.toml names commands moat
// runs on the host (hooks.on_worktree_ready) and .env names the host
// variables passed into sandboxes. Merge never merges a change under it by
// itself.
const ProtectedDir = hostgit.MoatDir + "/"

// inTheWay lists the paths that tip adds to Repo's HEAD where Repo's
// working tree already has something git does not track: the file itself,
// or a file or symbolic link where the path needs a directory. Git refuses
// to overwrite untracked files, but replaces ignored ones (.env,
// .moat/.env, build output) without a word, so an agent's commit could
// replace the user's credentials.
func (w *Worktree) inTheWay(ctx context.Context, tip string) ([]string, error) {
	// What the run adds or changes since it forked, not what differs from
	// HEAD: a file the target branch removed meanwhile is not the run's
	// doing, unless the run changed it (then git's modify/delete conflict
	// would replace the user's untracked copy, and the abort delete it).
	base, err := w.line(ctx, w.Repo, "merge-base", "HEAD", tip)
	if err != nil {
		if hostgit.ExitCode(err) == 1 {
			return nil, fmt.Errorf("%s and %s share no history, so moat will not merge them", w.Branch, w.TargetBranch)
		}
		return nil, err
	}
	out, err := w.git(ctx, w.Repo, "diff", "--name-only", "-z", "--no-renames", "--diff-filter=AMT", base, tip)
	if err != nil {
		return nil, err
	}
	added := hostgit.SplitZ(out)
	if len(added) == 0 {
		return nil, nil
	}
	// Paths HEAD tracks as well are git merge's business (it refuses or
	// merges them); only untracked or ignored ones are in the way.
	// (The whole listing, not the added paths as arguments: there may be
	// more of them than a command line holds.)
	tracked, err := w.git(ctx, w.Repo, "ls-tree", "-r", "-z", "--name-only", "--full-tree", "HEAD")
	if err != nil {
		return nil, err
	}
	inHead := map[string]bool{}
	for _, p := range hostgit.SplitZ(tracked) {
		inHead[p] = true
	}
	var clash []string
	for _, p := range added {
		if inHead[p] {
			continue
		}
		parts := strings.Split(p, "/")
		for i := 1; i <= len(parts); i++ {
			fi, err := os.Lstat(filepath.Join(w.Repo, filepath.FromSlash(strings.Join(parts[:i], "/"))))
			if err != nil {
				break // nothing there: git makes it
			}
			if i == len(parts) || !fi.IsDir() {
				clash = append(clash, p)
				break
			}
		}
	}
	return clash, nil
}

// dropBranchIfClean deletes the temporary branch after a merge, unless the
// worktree holds uncommitted work: then the branch stays checked out there,
// so that work can still be committed on it (Close deletes the branch if
// the worktree turns out clean).
func (w *Worktree) dropBranchIfClean(ctx context.Context, res *MergeResult, force bool) error {
	if exists(w.Path) {
		why, err := w.dirty(ctx)
		if err != nil {
			return fmt.Errorf("worktree: merge: %w", err)
		}
		if why != "" {
			w.log("keeping %s checked out in %s: the worktree %s", w.Branch, w.Path, why)
			return nil
		}
	}
	if err := w.dropBranch(ctx, force); err != nil {
		return fmt.Errorf("worktree: merge: %w", err)
	}
	res.BranchDeleted = true
	return nil
}

// mergeFailed turns a failed git merge into a clear error, aborting a
// conflicted merge.
func (w *Worktree) mergeFailed(ctx context.Context, merr error) error {
	ctx = context.WithoutCancel(ctx)
	if mh, _ := w.line(ctx, w.Repo, "rev-parse", "-q", "--verify", "MERGE_HEAD"); mh != "" {
		out, _ := w.git(ctx, w.Repo, "diff", "--name-only", "-z", "--diff-filter=U")
		files := hostgit.SplitZ(out)
		if _, err := w.git(ctx, w.Repo, "merge", "--abort"); err != nil {
			return fmt.Errorf("worktree: merging %s into %s stopped on conflicts (%s) and git merge --abort failed too; the repository %s is mid-merge: %w", w.Branch, w.TargetBranch, strings.Join(files, ", "), w.Repo, err)
		}
		return &MergeConflictError{Repo: w.Repo, Target: w.TargetBranch, Branch: w.Branch, Files: files, Fix: w.conflictCommands(files)}
	}
	var ge *hostgit.Error
	if errors.As(merr, &ge) {
		o := ge.Output()
		if strings.Contains(o, "would be overwritten by merge") || strings.Contains(o, "commit your changes or stash them") ||
			strings.Contains(o, "you have unmerged files") || strings.Contains(o, "Your local changes") {
			return fmt.Errorf("worktree: refusing to merge %s into %s: %s has uncommitted changes the merge would overwrite (nothing was changed). Commit or stash them, then run:\n  cd %s\n  git merge --no-edit %s\ngit said: %s",
				w.Branch, w.TargetBranch, w.Repo, shell.Quote(w.Repo), shell.Quote(w.Branch), hostgit.Tail(strings.TrimSpace(ge.Stderr+ge.Stdout), 800))
		}
	}
	return fmt.Errorf("worktree: merge failed; %s is kept: %w", w.Branch, merr)
}

func (w *Worktree) conflictCommands(files []string) string {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = shell.Quote(f)
	}
	return strings.Join([]string{
		"cd " + shell.Quote(w.Repo),
		"git merge --no-edit " + shell.Quote(w.Branch),
		"# resolve the conflicts in: " + strings.Join(files, ", "),
		"git add -- " + strings.Join(q, " "),
		"git commit --no-edit",
		"# once moat has removed its worktree " + w.Path + ":",
		"git branch -d " + shell.Quote(w.Branch),
	}, "\n")
}

// dropBranch detaches the worktree (when it still exists) and deletes the
// temporary branch; force uses -D, else -d (which checks it is merged).
func (w *Worktree) dropBranch(ctx context.Context, force bool) error {
	if exists(w.Path) {
		if _, err := w.git(ctx, w.Path, "checkout", "-q", "--detach"); err != nil {
			return fmt.Errorf("detaching the worktree before deleting %s: %w", w.Branch, err)
		}
	} else if _, err := w.git(ctx, w.Repo, "worktree", "prune"); err != nil {
		return err
	}
	flag := "-d"
	if force {
		flag = "-D"
	}
	if _, err := w.git(ctx, w.Repo, "branch", flag, w.Branch); err != nil {
		return fmt.Errorf("deleting the temporary branch %s: %w", w.Branch, err)
	}
	return nil
}

func (w *Worktree) count(ctx context.Context, revs ...string) (int, error) {
	out, err := w.line(ctx, w.Repo, append([]string{"rev-list", "--count"}, revs...)...)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(out)
}

func (w *Worktree) commits(ctx context.Context, before, after string) ([]Commit, error) {
	out, err := w.git(ctx, w.Repo, "log", "--reverse", "--format=%H %s", before+".."+after)
	if err != nil {
		return nil, err
	}
	var cs []Commit
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		sha, subj, _ := strings.Cut(l, " ")
		cs = append(cs, Commit{SHA: sha, Subject: subj})
	}
	return cs, nil
}

// Close removes a clean worktree, or keeps one that holds work and returns
// its path. A worktree holds work when git status shows changes (beyond
// CopyToWorktree copies left as they were), a git operation such as am or
// merge is unfinished, or it is locked (sync-out locks it when it fails).
// An unmerged temporary branch is deleted only when its commits are all
// reachable from BaseHead or TargetBranch; otherwise it is kept and named
// in KeptBranch.
func (w *Worktree) Close(ctx context.Context) (preserved string, err error) {
	if w.closed {
		return "", nil
	}
	defer w.releaseInUse()
	unlock, err := w.lock(ctx)
	if err != nil {
		return "", fmt.Errorf("worktree: close: %w", err)
	}
	defer unlock()

	if exists(w.Path) {
		why := w.blocked()
		if why == "" {
			if why, err = w.dirty(ctx); err != nil {
				return "", fmt.Errorf("worktree: close: %w", err)
			}
		}
		if why != "" {
			w.log("keeping the worktree %s: it %s", w.Path, why)
			w.closed, w.PreservedReason = true, "it "+why
			return w.Path, nil
		}
		if _, err := w.git(ctx, w.Repo, "worktree", "remove", "--force", w.Path); err != nil {
			return "", fmt.Errorf("worktree: close: %w", err)
		}
	}
	if _, err := w.git(ctx, w.Repo, "worktree", "prune"); err != nil {
		return "", fmt.Errorf("worktree: close: %w", err)
	}
	w.closed = true
	if !w.Temp {
		return "", nil
	}
	tip, err := w.line(ctx, w.Repo, "rev-parse", "-q", "--verify", "refs/heads/"+w.Branch)
	if err != nil && hostgit.ExitCode(err) != 1 {
		return "", fmt.Errorf("worktree: close: %w", err)
	}
	if tip == "" {
		return "", nil
	}
	if w.keep {
		w.KeptBranch = w.Branch
		return "", nil
	}
	if w.merged { // kept by Merge for a worktree that was dirty then
		if _, err := w.git(ctx, w.Repo, "branch", "-d", w.Branch); err != nil {
			w.KeptBranch = w.Branch
			w.log("keeping the merged branch %s: %v", w.Branch, err)
		}
		return "", nil
	}
	revs := []string{tip, "^" + w.BaseHead}
	if w.TargetBranch != "" {
		if t, _ := w.line(ctx, w.Repo, "rev-parse", "-q", "--verify", "refs/heads/"+w.TargetBranch); t != "" {
			revs = append(revs, "^"+t)
		}
	}
	n, err := w.count(ctx, revs...)
	if err != nil {
		return "", fmt.Errorf("worktree: close: %w", err)
	}
	if n > 0 {
		w.KeptBranch = w.Branch
		w.log("keeping branch %s: it has %d commit(s) merged nowhere; merge them with: git merge %s (or drop them: git branch -D %s)", w.Branch, n, w.Branch, w.Branch)
		return "", nil
	}
	if _, err := w.git(ctx, w.Repo, "branch", "-D", w.Branch); err != nil {
		return "", fmt.Errorf("worktree: close: %w", err)
	}
	return "", nil
}

// releaseInUse lets another run use the named branch.
func (w *Worktree) releaseInUse() {
	if w.inUse != nil {
		w.inUse()
		w.inUse = nil
	}
}

// Keep makes Close keep the temporary branch whatever it holds (for a run
// whose commits must not be merged nor dropped).
func (w *Worktree) Keep() { w.keep = true }

// Commits lists the commits on Branch beyond BaseHead, oldest first: what
// the run added. For a temporary branch, call it before Merge deletes the
// branch.
func (w *Worktree) Commits(ctx context.Context) ([]Commit, error) {
	cs, err := w.commits(ctx, w.BaseHead, "refs/heads/"+w.Branch)
	if err != nil {
		return nil, fmt.Errorf("worktree: listing the commits of %s: %w", w.Branch, err)
	}
	return cs, nil
}

// blocked says why the worktree must not be touched: a lock or an
// unfinished git operation; "" when neither.
func (w *Worktree) blocked() string {
	if w.gitDir == "" {
		return ""
	}
	if reason, err := os.ReadFile(filepath.Join(w.gitDir, "locked")); err == nil {
		r := strings.TrimSpace(string(reason))
		if r == "" {
			return "is locked (git worktree lock)"
		}
		return "is locked: " + r
	}
	for _, op := range []struct{ file, what string }{
		{"rebase-apply", "has an unfinished git am or rebase"},
		{"rebase-merge", "has an unfinished git rebase"},
		{"MERGE_HEAD", "has an unfinished git merge"},
		{"CHERRY_PICK_HEAD", "has an unfinished git cherry-pick"},
		{"REVERT_HEAD", "has an unfinished git revert"},
		{"BISECT_LOG", "has an unfinished git bisect"},
	} {
		if exists(filepath.Join(w.gitDir, op.file)) {
			return op.what
		}
	}
	return ""
}

// dirty says what uncommitted work the worktree holds, "" when none.
// Untracked or modified files that CopyToWorktree wrote and nobody changed
// since do not count.
func (w *Worktree) dirty(ctx context.Context) (string, error) {
	out, err := w.git(ctx, w.Path, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignore-submodules=none")
	if err != nil {
		return "", err
	}
	recs := hostgit.SplitZ(out)
	for i := 0; i < len(recs); i++ {
		r := recs[i]
		if len(r) < 4 {
			continue
		}
		code, p := r[:2], r[3:]
		if code[0] == 'R' || code[0] == 'C' {
			i++ // the source path follows
		}
		if (code == "??" || code == " M") && w.unchangedCopy(p) {
			continue
		}
		return fmt.Sprintf("has uncommitted changes (%s %s ...)", strings.TrimSpace(code), p), nil
	}
	return "", nil
}

// worktreeEntry is one record of git worktree list --porcelain.
type worktreeEntry struct {
	Path, Head, Branch string
}

func (w *Worktree) list(ctx context.Context) ([]worktreeEntry, error) {
	// Not -z, which needs git 2.36; moat's own paths have no newlines.
	out, err := w.git(ctx, w.Repo, "worktree", "list", "--porcelain")
	if err != nil {
		return nil, err
	}
	var all []worktreeEntry
	var cur *worktreeEntry
	for _, f := range strings.Split(out, "\n") {
		switch {
		case f == "":
			cur = nil
		case strings.HasPrefix(f, "worktree "):
			all = append(all, worktreeEntry{Path: filepath.Clean(filepath.FromSlash(strings.TrimPrefix(f, "worktree ")))})
			cur = &all[len(all)-1]
		case cur != nil && strings.HasPrefix(f, "HEAD "):
			cur.Head = strings.TrimPrefix(f, "HEAD ")
		case cur != nil && strings.HasPrefix(f, "branch "):
			cur.Branch = strings.TrimPrefix(f, "branch ")
		}
	}
	return all, nil
}

// isUnder reports whether p is inside dir, comparing resolved paths.
func isUnder(p, dir string) bool {
	p, dir = canonical(p), canonical(dir)
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return false
	}
	if runtime.GOOS == "windows" {
		rel2, err2 := filepath.Rel(strings.ToLower(dir), strings.ToLower(p))
		if err2 == nil {
			rel = rel2
		}
	}
	return rel != "." && filepath.IsLocal(rel)
}

func canonical(p string) string {
	p = filepath.Clean(p)
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sanitize turns a branch name into one directory name.
func sanitize(branch string) string {
	b := []byte(branch)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	s := strings.TrimLeft(string(b), ".-")
	if s == "" {
		s = "branch"
	}
	return s
}
