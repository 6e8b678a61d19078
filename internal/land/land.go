// Package land brings a run's commits, already fetched into the user's
// repository, onto the branch the run is for: merge-to-head merges them
// into the branch that was checked out when the run started; the named
// branch strategy creates or advances a branch.
//
// Where a checkout is involved (the branch is checked out in the user's
// repository or one of its worktrees), landing is a real "git merge"
// there: a fast-forward when the branch has not moved, a merge commit
// when it has. A branch checked out nowhere moves by update-ref, with a
// merge commit made by "git merge-tree --write-tree" when it moved.
//
// Work that cannot land is never lost and the user's tree is never left
// half way: a conflict is aborted, and in every refusal the commits are
// kept on a branch (moat/<run-id>) named in a *NotLandedError with the
// commands to finish by hand. Changes to .moat/ (which decides what moat
// runs on the host and which secrets reach a sandbox) never land by
// themselves, whatever the strategy.
package land

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/worktree/hostgit"
)

// Options say what lands where.
type Options struct {
	// Repo is the user's repository: the top level of the checkout the run
	// started in.
	Repo string
	// Base is the commit the run started from; Head the tip of the agent's
	// commits (both in Repo).
	Base, Head string
	// Target selects merge-to-head: the branch checked out in Repo when the
	// run started. Branch selects the named-branch strategy instead.
	Target, Branch string
	// KeepBranch is where the commits are kept when they cannot land,
	// e.g. moat/<run-id>.
	KeepBranch string
	// GitDir is Repo's common git directory when the caller has located
	// the repository (hostgit.Locate); "" locates it again.
	GitDir string
	// Identity makes moat's merge commit; nil reads the user's from Repo.
	Identity *hostgit.Identity
	// Timeout bounds each git command; 0 means hostgit.DefaultTimeout.
	Timeout time.Duration
	// Logf, when set, receives progress.
	Logf func(format string, args ...any)
}

// Commit is one commit.
type Commit struct{ SHA, Subject string }

// Result says what landed.
type Result struct {
	// Branch is where the commits landed.
	Branch string
	// Commits are the agent's commits new on Branch, oldest first (merge
	// commits the agent made included; moat's own merge commit not).
	Commits []Commit
	// Merge is the merge commit moat made when the branch had moved; nil
	// for a fast-forward or a new branch.
	Merge *Commit
	// Before and After are Branch's tip before and after ("" before a new
	// branch).
	Before, After string
	// NothingToDo: the agent made no commit.
	NothingToDo bool
}

// NotLandedError is returned when the commits did not land. The user's
// branch and checkout are as they were; the commits are on Kept.
type NotLandedError struct {
	Reason   string   // what stopped it, one sentence
	Kept     string   // the branch holding the commits
	Conflict bool     // a merge conflict stopped it
	Files    []string // the conflicting or blocking paths
	Fix      string   // shell commands (with # comments) to finish by hand
}

func (e *NotLandedError) Error() string {
	return fmt.Sprintf("%s; the commits are kept on %s", e.Reason, e.Kept)
}

// ProtectedDir holds moat's project files: config.toml names commands moat
// runs on the host and .env names the host variables passed into
// sandboxes. A change under it never lands by itself.
const ProtectedDir = hostgit.MoatDir + "/"

type lander struct {
	Options
	commonDir string
}

func (l *lander) git(ctx context.Context, dir string, args ...string) (string, error) {
	return hostgit.Run(ctx, l.Timeout, dir, args...)
}

func (l *lander) line(ctx context.Context, dir string, args ...string) (string, error) {
	return hostgit.Line(ctx, l.Timeout, dir, args...)
}

func (l *lander) log(format string, args ...any) {
	if l.Logf != nil {
		l.Logf(format, args...)
	}
}

// Land lands o.Head on o.Target (merge-to-head) or o.Branch (named branch).
// It runs under the repository's lock, so concurrent runs do not race.
func Land(ctx context.Context, o Options) (Result, error) {
	if (o.Target == "") == (o.Branch == "") {
		return Result{}, errors.New("land: give exactly one of Target and Branch")
	}
	l := &lander{Options: o, commonDir: o.GitDir}
	if l.commonDir == "" {
		repo, err := hostgit.Locate(ctx, o.Timeout, o.Repo)
		if err != nil {
			return Result{}, fmt.Errorf("land: %w", err)
		}
		l.Repo, l.commonDir = repo.TopLevel, repo.CommonDir
	}
	unlock, err := hostgit.Lock(ctx, l.commonDir)
	if err != nil {
		return Result{}, fmt.Errorf("land: %w", err)
	}
	defer unlock()
	res, err := l.land(ctx)
	var nl *NotLandedError
	if errors.As(err, &nl) {
		if kerr := l.keep(context.WithoutCancel(ctx)); kerr != nil {
			return res, fmt.Errorf("land: %v, and keeping the commits on %s failed too (they are still at %s): %w", nl.Reason, l.KeepBranch, l.Head, kerr)
		}
		return res, err
	}
	if err != nil {
		return res, fmt.Errorf("land: %w", err)
	}
	return res, nil
}

func (l *lander) land(ctx context.Context) (Result, error) {
	branch := l.Target
	if branch == "" {
		branch = l.Branch
	}
	res := Result{Branch: branch}
	if l.Head == "" || l.Head == l.Base {
		res.NothingToDo = true
		return res, nil
	}
	var cur string
	var h history
	if l.Target != "" {
		// Where HEAD is decides how much history inspect must look at.
		var err error
		if cur, res.Before, err = l.head(ctx, l.Repo); err != nil {
			return res, err
		}
		if cur != l.Target {
			res.Before = ""
		}
		if h, err = l.inspect(ctx, res.Before); err != nil {
			return res, err
		}
	} else {
		var err error
		if h, err = l.inspect(ctx, ""); err != nil {
			return res, err
		}
	}
	if !h.onBase {
		return res, &NotLandedError{
			Reason: fmt.Sprintf("not landing the run's commits on %s: the agent rewrote history below the commit the run started from (%s), so they no longer build on %s", branch, l.Base[:12], branch),
			Kept:   l.KeepBranch,
			Fix:    fmt.Sprintf("cd %s\ngit log --oneline --graph %s %s   # compare the two histories", shell.Quote(l.Repo), shell.Quote(branch), shell.Quote(l.KeepBranch)),
		}
	}
	if files := h.protected; len(files) > 0 {
		return res, &NotLandedError{
			Reason: fmt.Sprintf("refusing to merge the run's commits into %s by themselves: they change %s, and moat's files there decide what runs on your machine (hooks) and which of your secrets reach a sandbox (.env)", branch, strings.Join(files, ", ")),
			Kept:   l.KeepBranch, Files: files,
			Fix: fmt.Sprintf("cd %s\ngit diff %s %s -- %s   # review the change\ngit merge --no-edit %s   # if you accept it (check out %s first)",
				shell.Quote(l.Repo), l.Base[:12], shell.Quote(l.KeepBranch), ProtectedDir, shell.Quote(l.KeepBranch), shell.Quote(branch)),
		}
	}
	if l.Target != "" {
		if cur != l.Target {
			now := cur
			if now == "" {
				now = "a detached HEAD"
			}
			return res, &NotLandedError{
				Reason: fmt.Sprintf("not merging into %s: %s had it checked out when the run started and has %s now", l.Target, l.Repo, now),
				Kept:   l.KeepBranch,
				Fix:    fmt.Sprintf("cd %s\ngit checkout %s\ngit merge --no-edit %s", shell.Quote(l.Repo), shell.Quote(l.Target), shell.Quote(l.KeepBranch)),
			}
		}
		return l.mergeInCheckout(ctx, l.Repo, res, &h)
	}
	dir, err := l.checkedOutAt(ctx, l.Branch)
	if err != nil {
		return res, err
	}
	if dir != "" {
		st, err := l.git(ctx, dir, "status", "--porcelain=v1", "-z", "--untracked-files=no")
		if err != nil {
			return res, err
		}
		if st != "" {
			return res, &NotLandedError{
				Reason: fmt.Sprintf("not touching %s: it is checked out in %s with uncommitted changes", l.Branch, dir),
				Kept:   l.KeepBranch,
				Fix: fmt.Sprintf("cd %s\ngit stash   # or commit your changes\ngit merge --no-edit %s\ngit stash pop",
					shell.Quote(dir), shell.Quote(l.KeepBranch)),
			}
		}
		if _, res.Before, err = l.head(ctx, dir); err != nil {
			return res, err
		}
		return l.mergeInCheckout(ctx, dir, res, nil)
	}
	return l.moveRef(ctx, res)
}

// checkedOutAt returns the working tree that has branch checked out, or "".
func (l *lander) checkedOutAt(ctx context.Context, branch string) (string, error) {
	out, err := l.git(ctx, l.Repo, "worktree", "list", "--porcelain", "-z")
	if err != nil {
		return "", err
	}
	dir := ""
	for _, f := range hostgit.SplitZ(out) {
		if v, ok := strings.CutPrefix(f, "worktree "); ok {
			dir = v
		}
		if f == "branch refs/heads/"+branch && dir != "" && exists(dir) {
			return filepath.FromSlash(dir), nil
		}
	}
	return "", nil
}

// mergeInCheckout merges Head into the branch checked out in dir, whose
// tip is res.Before, with a real git merge: a fast-forward when the branch
// has not moved (whatever merge.ff says), else a merge commit that names
// KeepBranch. h is what inspect found for res.Before, or nil.
func (l *lander) mergeInCheckout(ctx context.Context, dir string, res Result, h *history) (Result, error) {
	if h == nil || h.mergeBase == "" {
		hh, err := l.inspect(ctx, res.Before)
		if err != nil {
			return res, err
		}
		h = &hh
	}
	if h.mergeBase == l.Head {
		res.NothingToDo, res.After = true, res.Before
		return res, nil
	}
	clash, err := l.inTheWay(ctx, dir, h.added)
	if err != nil {
		return res, err
	}
	if len(clash) > 0 {
		return res, &NotLandedError{
			Reason: fmt.Sprintf("not merging into %s: the run adds or changes %s, where %s has files git does not track (git would replace ignored ones, such as .env, without asking)", res.Branch, strings.Join(clash, ", "), dir),
			Kept:   l.KeepBranch, Files: clash,
			Fix: fmt.Sprintf("# move those files away, then:\ncd %s\ngit merge --no-edit %s", shell.Quote(dir), shell.Quote(l.KeepBranch)),
		}
	}
	id, err := l.identity(ctx, dir)
	if err != nil {
		return res, err
	}
	args := append(id.Args(), "merge", "--no-edit", "--no-autostash", "--ff", "-m", l.mergeMessage(res.Branch), l.Head)
	l.log("merging %s into %s", l.KeepBranch, res.Branch)
	if _, merr := l.git(ctx, dir, args...); merr != nil {
		return res, l.mergeFailed(ctx, dir, res.Branch, merr)
	}
	return l.finish(ctx, dir, "HEAD", res)
}

// mergeMessage is the subject of moat's merge commit into branch.
func (l *lander) mergeMessage(branch string) string {
	return "Merge branch '" + l.KeepBranch + "' into " + branch
}

func (l *lander) identity(ctx context.Context, dir string) (hostgit.Identity, error) {
	if l.Identity != nil {
		return *l.Identity, nil
	}
	return hostgit.ReadIdentity(ctx, l.Timeout, dir)
}

// head returns the branch checked out in dir ("" when HEAD is detached)
// and the commit HEAD is at, with one git command.
func (l *lander) head(ctx context.Context, dir string) (branch, commit string, err error) {
	// rev-parse applies its options in order: the commit, then the name.
	out, err := l.git(ctx, dir, "rev-parse", "HEAD", "--symbolic-full-name", "HEAD")
	if err != nil {
		return "", "", err
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 2 {
		return "", "", fmt.Errorf("git rev-parse HEAD in %s printed %q", dir, out)
	}
	if name, ok := strings.CutPrefix(lines[1], "refs/heads/"); ok {
		branch = name
	}
	return branch, lines[0], nil
}

// history is what the run's commits are, seen from where they land.
type history struct {
	onBase    bool     // Head descends from Base: no history rewritten below it
	protected []string // paths under ProtectedDir the commits change since Base
	// mergeBase is that of Head and the tip they land on; "" when inspect
	// had no tip.
	mergeBase string
	added     []string // paths added or changed since mergeBase
}

// inspect looks at the run's commits with as few git commands as it can:
// when tip is still Base (the branch has not moved, the common case), one
// merge-base and one diff say everything.
func (l *lander) inspect(ctx context.Context, tip string) (history, error) {
	var h history
	var err error
	if tip != "" {
		h.mergeBase, err = l.line(ctx, l.Repo, "merge-base", tip, l.Head)
		if err != nil && hostgit.ExitCode(err) != 1 {
			return h, err
		}
	}
	if tip == l.Base && tip != "" {
		h.onBase = h.mergeBase == l.Base
	} else if h.onBase, err = l.isAncestor(ctx, l.Base, l.Head); err != nil {
		return h, err
	}
	if !h.onBase {
		return h, nil
	}
	if tip != "" && h.mergeBase == "" {
		return h, fmt.Errorf("the run's commits share no history with %s", tip[:12])
	}
	changed, err := l.changes(ctx, l.Base)
	if err != nil {
		return h, err
	}
	for _, c := range changed {
		if strings.HasPrefix(c.path, ProtectedDir) {
			h.protected = append(h.protected, c.path)
		}
	}
	if h.mergeBase != "" && h.mergeBase != l.Base {
		if changed, err = l.changes(ctx, h.mergeBase); err != nil {
			return h, err
		}
	}
	if h.mergeBase != "" {
		for _, c := range changed {
			if c.status != 'D' {
				h.added = append(h.added, c.path)
			}
		}
	}
	return h, nil
}

type change struct {
	status byte // A, M, T or D (renames and copies are off)
	path   string
}

// changes lists what Head changes since from.
func (l *lander) changes(ctx context.Context, from string) ([]change, error) {
	out, err := l.git(ctx, l.Repo, "diff", "--name-status", "-z", "--no-renames", "--no-ext-diff", from, l.Head)
	if err != nil {
		return nil, err
	}
	f := hostgit.SplitZ(out)
	var cs []change
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] == "" {
			return nil, fmt.Errorf("git diff --name-status printed %q", hostgit.Tail(out, 200))
		}
		cs = append(cs, change{status: f[i][0], path: f[i+1]})
	}
	return cs, nil
}

// moveRef lands on a branch checked out nowhere.
func (l *lander) moveRef(ctx context.Context, res Result) (Result, error) {
	ref := "refs/heads/" + l.Branch
	tip, _ := l.line(ctx, l.Repo, "rev-parse", "-q", "--verify", ref+"^{commit}")
	res.Before = tip
	switch anc, err := l.isAncestor(ctx, tip, l.Head); {
	case tip == "":
		if _, err := l.git(ctx, l.Repo, "update-ref", ref, l.Head, ""); err != nil {
			return res, err
		}
		res.After = l.Head
	case err != nil:
		return res, err
	case anc:
		if _, err := l.git(ctx, l.Repo, "update-ref", ref, l.Head, tip); err != nil {
			return res, err
		}
		res.After = l.Head
	default:
		if done, _ := l.isAncestor(ctx, l.Head, tip); done {
			res.NothingToDo, res.After = true, tip
			return res, nil
		}
		merged, err := l.mergeTree(ctx, tip)
		if err != nil {
			return res, err
		}
		if _, err := l.git(ctx, l.Repo, "update-ref", ref, merged, tip); err != nil {
			return res, err
		}
		res.After = merged
	}
	return l.finish(ctx, l.Repo, res.After, res)
}

// mergeTree makes the merge commit of tip and Head without a checkout.
func (l *lander) mergeTree(ctx context.Context, tip string) (string, error) {
	out, err := l.git(ctx, l.Repo, "merge-tree", "--write-tree", "--name-only", "-z", "--no-messages", tip, l.Head)
	if err != nil && hostgit.ExitCode(err) == 1 {
		var ge *hostgit.Error
		errors.As(err, &ge)
		parts := hostgit.SplitZ(ge.Stdout)
		var files []string
		if len(parts) > 1 {
			files = parts[1:]
		}
		return "", &NotLandedError{
			Reason: fmt.Sprintf("%s moved while the run worked and the run's commits conflict with it in %s", l.Branch, strings.Join(files, ", ")),
			Kept:   l.KeepBranch, Conflict: true, Files: files,
			Fix: fmt.Sprintf("cd %s\ngit checkout %s\ngit merge --no-edit %s\n# resolve the conflicts, then: git add … && git commit --no-edit",
				shell.Quote(l.Repo), shell.Quote(l.Branch), shell.Quote(l.KeepBranch)),
		}
	}
	if err != nil {
		var ge *hostgit.Error
		if errors.As(err, &ge) && strings.Contains(ge.Stderr, "--write-tree") {
			return "", &NotLandedError{Reason: fmt.Sprintf("%s moved while the run worked, and this git is too old (before 2.38) to merge without a checkout", l.Branch), Kept: l.KeepBranch,
				Fix: fmt.Sprintf("cd %s\ngit checkout %s\ngit merge --no-edit %s", shell.Quote(l.Repo), shell.Quote(l.Branch), shell.Quote(l.KeepBranch))}
		}
		return "", err
	}
	tree, _, _ := strings.Cut(out, "\x00")
	tree = strings.TrimSpace(tree)
	id, err := l.identity(ctx, l.Repo)
	if err != nil {
		return "", err
	}
	args := append(id.Args(), "commit-tree", tree, "-p", tip, "-p", l.Head, "-m", l.mergeMessage(l.Branch))
	return l.line(ctx, l.Repo, args...)
}

// finish lists what landed on the branch, now at tip (a commit, or HEAD
// in dir), with one git log: the agent's commits, and apart from them the
// merge commit moat made.
func (l *lander) finish(ctx context.Context, dir, tip string, res Result) (Result, error) {
	args := []string{"log", "--format=%H%x00%s", tip, "--not", l.Base}
	if res.Before != "" {
		args = append(args, res.Before)
	}
	out, err := l.git(ctx, dir, args...)
	if err != nil {
		return res, err
	}
	var cs []Commit
	for _, ln := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if sha, subj, ok := strings.Cut(ln, "\x00"); ok {
			cs = append(cs, Commit{SHA: sha, Subject: subj})
		}
	}
	if len(cs) == 0 {
		return res, fmt.Errorf("the branch %s does not hold the run's commits after landing", res.Branch)
	}
	res.After = cs[0].SHA
	if res.After != l.Head {
		res.Merge = &cs[0]
		cs = cs[1:]
	}
	slices.Reverse(cs)
	res.Commits = cs
	return res, nil
}

// keep points KeepBranch at Head (made, or moved when it already points
// at another commit of this run).
func (l *lander) keep(ctx context.Context) error {
	_, err := l.git(ctx, l.Repo, "update-ref", "refs/heads/"+l.KeepBranch, l.Head)
	return err
}

func (l *lander) isAncestor(ctx context.Context, a, b string) (bool, error) {
	if a == "" || b == "" {
		return false, nil
	}
	_, err := l.git(ctx, l.Repo, "merge-base", "--is-ancestor", a, b)
	if err == nil {
		return true, nil
	}
	if hostgit.ExitCode(err) == 1 {
		return false, nil
	}
	return false, err
}

// inTheWay lists the paths among added (what the run adds or changes)
// where dir's working tree has something git does not track: the file
// itself, or a file or link where the path needs a directory. Git refuses
// to overwrite untracked files, but replaces ignored ones (.env, build
// output) without a word, so an agent's commit could replace the user's
// credentials. Only when something is there does it ask git what HEAD
// tracks.
func (l *lander) inTheWay(ctx context.Context, dir string, added []string) ([]string, error) {
	var there []string
	for _, p := range added {
		parts := strings.Split(p, "/")
		for i := 1; i <= len(parts); i++ {
			fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(strings.Join(parts[:i], "/"))))
			if err != nil {
				break // nothing there: git makes it
			}
			if i == len(parts) || !fi.IsDir() {
				there = append(there, p)
				break
			}
		}
	}
	if len(there) == 0 {
		return nil, nil
	}
	tracked, err := l.git(ctx, dir, "ls-tree", "-r", "-z", "--name-only", "--full-tree", "HEAD")
	if err != nil {
		return nil, err
	}
	inHead := map[string]bool{}
	for _, p := range hostgit.SplitZ(tracked) {
		inHead[p] = true
	}
	var clash []string
	for _, p := range there {
		if !inHead[p] {
			clash = append(clash, p)
		}
	}
	return clash, nil
}

// mergeFailed turns a failed git merge into a *NotLandedError, aborting a
// conflicted merge so the checkout is as it was.
func (l *lander) mergeFailed(ctx context.Context, dir, branch string, merr error) error {
	ctx = context.WithoutCancel(ctx)
	if mh, _ := l.line(ctx, dir, "rev-parse", "-q", "--verify", "MERGE_HEAD"); mh != "" {
		out, _ := l.git(ctx, dir, "diff", "--name-only", "-z", "--diff-filter=U")
		files := hostgit.SplitZ(out)
		if _, err := l.git(ctx, dir, "merge", "--abort"); err != nil {
			return fmt.Errorf("merging %s into %s stopped on conflicts (%s) and git merge --abort failed too; %s is mid-merge: %w", l.KeepBranch, branch, strings.Join(files, ", "), dir, err)
		}
		q := make([]string, len(files))
		for i, f := range files {
			q[i] = shell.Quote(f)
		}
		return &NotLandedError{
			Reason: fmt.Sprintf("the run's commits conflict with %s in %s; the merge was aborted and your checkout is unchanged", branch, strings.Join(files, ", ")),
			Kept:   l.KeepBranch, Conflict: true, Files: files,
			Fix: strings.Join([]string{
				"cd " + shell.Quote(dir),
				"git merge --no-edit " + shell.Quote(l.KeepBranch),
				"# resolve the conflicts in: " + strings.Join(files, ", "),
				"git add -- " + strings.Join(q, " "),
				"git commit --no-edit",
				"git branch -d " + shell.Quote(l.KeepBranch),
			}, "\n"),
		}
	}
	var ge *hostgit.Error
	if errors.As(merr, &ge) {
		o := ge.Output()
		if strings.Contains(o, "would be overwritten by merge") || strings.Contains(o, "commit your changes or stash them") ||
			strings.Contains(o, "you have unmerged files") || strings.Contains(o, "Your local changes") {
			return &NotLandedError{
				Reason: fmt.Sprintf("not merging into %s: %s has uncommitted changes the merge would overwrite (nothing was changed)", branch, dir),
				Kept:   l.KeepBranch,
				Fix:    fmt.Sprintf("cd %s\ngit stash   # or commit your changes\ngit merge --no-edit %s\ngit stash pop", shell.Quote(dir), shell.Quote(l.KeepBranch)),
			}
		}
	}
	return &NotLandedError{Reason: fmt.Sprintf("git merge into %s failed: %v", branch, merr), Kept: l.KeepBranch,
		Fix: fmt.Sprintf("cd %s\ngit merge --no-edit %s", shell.Quote(dir), shell.Quote(l.KeepBranch))}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
