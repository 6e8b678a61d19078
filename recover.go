package moat

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/gitsync"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

// RecoverOptions say which sandbox's work Recover brings home, and where.
type RecoverOptions struct {
	// Repo is a directory of the host repository the work goes into.
	Repo string
	// Sandbox is an open handle on the sandbox, such as a
	// sandbox.LeftoverFinder's OpenLeftover gives. Recover does not close
	// it.
	Sandbox sandbox.Handle
	// Name names the sandbox in the branch made when RunID is empty:
	// moat/recovered-<Name>.
	Name string
	// RunID, when set, is the run that made the sandbox: the work goes on
	// the run's own branch, moat/<RunID>, when there is none of that name
	// yet.
	RunID string
	// MaxFileBytes, MaxSyncBytes, MaxSyncFiles and MaxSyncObjects bound
	// what comes home, as RunOptions' do (0: the defaults).
	MaxFileBytes, MaxSyncBytes, MaxSyncFiles, MaxSyncObjects int64
}

// RecoverResult says what Recover brought home.
type RecoverResult struct {
	// Branch holds the work: the sandbox's HEAD, with what the agent left
	// uncommitted as one more commit; "" when there was nothing to bring.
	Branch string
	// Head is the branch's tip (or the sandbox's HEAD, which the host
	// already had, when Branch is "").
	Head string
	// Commits are the commits on Branch the host did not have before,
	// newest first.
	Commits []Commit
	// UncommittedBranch holds work left uncommitted during an unfinished
	// merge or rebase, which could not go on Branch.
	UncommittedBranch string
	// AlreadyHome is set when the host had all of the sandbox's work.
	AlreadyHome bool
	// NoRepository is set when the sandbox holds no repository (it was
	// killed before its sync in ended): there is nothing to bring.
	NoRepository bool
}

// Recover brings the work in a sandbox home that a run left behind (moat
// was killed, say): the commits beyond the sandbox's sync base, and what
// was left uncommitted as one labelled commit, arrive in the repository
// as they were made, through the same checks as a run's sync out, on a
// new branch. The sandbox's repository gets that labelled commit; nothing
// else changes in it. Nothing else in the host repository changes.
func Recover(ctx context.Context, o RecoverOptions) (*RecoverResult, error) {
	if o.Sandbox == nil {
		return nil, errors.New("moat: recover: no sandbox given")
	}
	repo, err := hostgit.Locate(ctx, 0, o.Repo)
	if err != nil {
		return nil, fmt.Errorf("moat: recover: %w", err)
	}
	res := &RecoverResult{}
	p, err := gitsync.Inspect(ctx, o.Sandbox, gitsync.Options{})
	if err != nil {
		return nil, fmt.Errorf("moat: recover: %w", err)
	}
	if !p.Repo || p.Head == "" {
		res.NoRepository = true
		return res, nil
	}
	if !p.Dirty && OnBranch(ctx, repo.TopLevel, p.Head) {
		res.AlreadyHome, res.Head = true, p.Head
		forgetRun(ctx, repo.TopLevel, o.RunID)
		return res, nil
	}
	known := p.Base
	if known != "" && !hasCommit(ctx, repo.TopLevel, known) {
		known = "" // not this repository's base: the whole history comes
	}
	prefix := "refs/moat/recovered/" + strconv.FormatInt(time.Now().UnixNano(), 36)
	out, err := gitsync.SyncOut(ctx, o.Sandbox, gitsync.Out{Repo: repo.TopLevel, GitDir: repo.CommonDir, RefPrefix: prefix, Known: known,
		Limits: gitsync.Limits{FileBytes: o.MaxFileBytes, BundleBytes: o.MaxSyncBytes, Files: o.MaxSyncFiles, Objects: o.MaxSyncObjects}}, gitsync.Options{})
	defer dropRefs(context.WithoutCancel(ctx), repo.TopLevel, prefix+"/")
	if err != nil {
		return nil, fmt.Errorf("moat: recover: %w", err)
	}
	res.Head = out.Head
	if out.Uncommitted == "" && (out.Head == known || OnBranch(ctx, repo.TopLevel, out.Head)) {
		res.AlreadyHome = true
		forgetRun(ctx, repo.TopLevel, o.RunID)
		return res, nil
	}
	branch, err := freeBranch(ctx, repo.TopLevel, o)
	if err != nil {
		return nil, err
	}
	if out.Head != known {
		if _, err := hostgit.Run(ctx, 0, repo.TopLevel, "update-ref", "refs/heads/"+branch, out.Head, ""); err != nil {
			return nil, fmt.Errorf("moat: recover: making the branch %s: %w", branch, err)
		}
		res.Branch = branch
		res.Commits = newCommits(ctx, repo.TopLevel, known, out.Head)
	}
	if out.Uncommitted != "" {
		b := branch + "-uncommitted"
		if _, err := hostgit.Run(ctx, 0, repo.TopLevel, "update-ref", "refs/heads/"+b, out.Uncommitted, ""); err != nil {
			return nil, fmt.Errorf("moat: recover: making the branch %s: %w", b, err)
		}
		res.UncommittedBranch = b
	}
	forgetRun(ctx, repo.TopLevel, o.RunID)
	return res, nil
}

// OnBranch reports whether the repository around dir has commit sha on
// one of its branches or tags: where a user sees it, unlike a commit
// that only moat's own refs (refs/moat/runs/…) keep.
func OnBranch(ctx context.Context, dir, sha string) bool {
	if !hasCommit(ctx, dir, sha) {
		return false
	}
	out, err := hostgit.Run(ctx, 0, dir, "for-each-ref", "--count=1", "--contains", sha, "--format=%(refname)", "refs/heads/", "refs/tags/")
	return err == nil && strings.TrimSpace(out) != ""
}

// ForgetRun removes what a run that was killed left in the repository
// around dir, refs/moat/runs/<runID>/, once nothing there is needed: its
// head, if any, is on a branch. It reports whether it removed them.
func ForgetRun(ctx context.Context, dir, runID string) bool {
	return forgetRun(ctx, dir, runID)
}

func forgetRun(ctx context.Context, dir, runID string) bool {
	if runID == "" || strings.ContainsAny(runID, "/ \t\n") {
		return false
	}
	prefix := "refs/moat/runs/" + runID
	if head, err := hostgit.Line(ctx, 0, dir, "rev-parse", "-q", "--verify", prefix+"/head"); err == nil && head != "" && !OnBranch(ctx, dir, head) {
		return false
	}
	dropRefs(context.WithoutCancel(ctx), dir, prefix+"/")
	return true
}

func hasCommit(ctx context.Context, dir, sha string) bool {
	_, err := hostgit.Run(ctx, 0, dir, "cat-file", "-e", sha+"^{commit}")
	return err == nil
}

// freeBranch is the run's branch when it does not exist yet, else
// moat/recovered-<name>, with -2, -3 … when that exists too.
func freeBranch(ctx context.Context, dir string, o RecoverOptions) (string, error) {
	var candidates []string
	if o.RunID != "" {
		candidates = append(candidates, "moat/"+o.RunID)
	}
	name := o.Name
	if name == "" {
		name = time.Now().Format("20060102-150405")
	}
	base := "moat/recovered-" + name
	candidates = append(candidates, base)
	for i := 2; i < 100; i++ {
		candidates = append(candidates, base+"-"+strconv.Itoa(i))
	}
	for _, b := range candidates {
		if err := hostgit.CheckBranchName(ctx, dir, b); err != nil {
			continue
		}
		if !refExists(ctx, dir, "refs/heads/"+b) && !refExists(ctx, dir, "refs/heads/"+b+"-uncommitted") {
			return b, nil
		}
	}
	return "", fmt.Errorf("moat: recover: no free branch name like %s", base)
}

func refExists(ctx context.Context, dir, ref string) bool {
	_, err := hostgit.Run(ctx, 0, dir, "rev-parse", "-q", "--verify", ref)
	return err == nil
}

// newCommits lists the commits in head beyond known, newest first.
func newCommits(ctx context.Context, dir, known, head string) []Commit {
	args := []string{"log", "--format=%H %s", head}
	if known != "" {
		args = append(args, "^"+known)
	}
	out, err := hostgit.Run(ctx, 0, dir, args...)
	if err != nil {
		return nil
	}
	var cs []Commit
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if sha, subject, ok := strings.Cut(l, " "); ok || len(l) == 40 {
			cs = append(cs, Commit{SHA: sha, Subject: subject})
		}
	}
	return cs
}

// dropRefs deletes every ref under prefix, best effort.
func dropRefs(ctx context.Context, dir, prefix string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := hostgit.Run(ctx, 0, dir, "for-each-ref", "--format=delete %(refname)", prefix)
	if err != nil || out == "" {
		return
	}
	(hostgit.Cmd{Dir: dir, Args: []string{"update-ref", "--stdin"}, Stdin: strings.NewReader(out)}).Run(ctx)
}
