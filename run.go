package moat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moatdev/moat/internal/gitsync"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/internal/worktree"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

// Errors a run can end with, for errors.Is.
var (
	// ErrIdleTimeout: the agent printed nothing for IdleTimeout.
	ErrIdleTimeout = errors.New("agent idle timeout")
	// ErrAgentFailed: the agent exited non-zero.
	ErrAgentFailed = errors.New("agent failed")
	// ErrSyncOut: the agent's work could not be applied on the host; it is
	// kept on disk (RunResult.Kept says where and how to finish).
	ErrSyncOut = errors.New("could not apply the agent's work on the host")
	// ErrMergeConflict: the run's commits conflict with the target branch;
	// the run's branch is kept.
	ErrMergeConflict = errors.New("merge conflict")
)

// errCompletedHanging cancels an agent that printed its completion signal
// but did not exit within CompletionTimeout.
var errCompletedHanging = errors.New("agent completed but did not exit")

// Run runs opts.Agent in one sandbox from opts.Sandbox on the repository,
// for up to MaxIterations, and brings its commits home. The sandbox is
// closed, except when the agent's work could not be brought out of it:
// then RunResult.Sandbox holds it, open, and the caller must Close it once
// the work is safe (RunResult.Kept says how to fetch it). The result is
// returned also with an error when anything was done or kept, so callers
// can report it.
func Run(ctx context.Context, opts RunOptions) (*RunResult, error) {
	r, err := newRunner(opts)
	if err != nil {
		return nil, err
	}
	defer r.closeLog()
	res, err := r.run(ctx)
	if res != nil {
		for i := range res.Commits {
			res.Commits[i].Subject = r.redact(res.Commits[i].Subject)
		}
		for i, k := range res.Kept {
			k.Reason, k.Fix = r.redact(k.Reason), r.redact(k.Fix)
			res.Kept[i] = k
			r.logf("kept %s %s: %s; to finish: %s", k.What, k.Path, k.Reason, k.Fix)
		}
	}
	if err != nil {
		err = redactError(err, r.secrets)
		r.logf("run failed: %v", err)
	}
	return res, err
}

type runner struct {
	opts    RunOptions
	res     *RunResult
	mu      sync.Mutex // serialises events
	log     *os.File
	iter    int
	prompt  string
	secrets *strings.Replacer // RunOptions.Env values → [redacted]

	// keepSandbox: sync out failed before it changed anything on the host,
	// so the sandbox holds the only copy of the work and is not deleted.
	keepSandbox bool
}

func newRunner(o RunOptions) (*runner, error) {
	if o.Sandbox == nil {
		return nil, errors.New("moat: RunOptions.Sandbox is required (e.g. exedev.New, local.New)")
	}
	if o.Agent == nil {
		return nil, errors.New("moat: RunOptions.Agent is required (e.g. claude.New, command.New)")
	}
	if (o.Prompt == "") == (o.PromptFile == "") {
		return nil, errors.New("moat: give exactly one of Prompt and PromptFile")
	}
	if o.MaxIterations < 0 {
		return nil, fmt.Errorf("moat: MaxIterations is %d; it must be 1 or more (0 means 1)", o.MaxIterations)
	}
	if o.MaxIterations == 0 {
		o.MaxIterations = 1
	}
	if len(o.CompletionSignals) == 0 {
		o.CompletionSignals = []string{DefaultCompletionSignal}
	}
	for _, s := range o.CompletionSignals {
		if strings.TrimSpace(s) == "" {
			return nil, errors.New("moat: an empty completion signal would match any output")
		}
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Minute
	}
	if o.CompletionTimeout <= 0 {
		o.CompletionTimeout = 60 * time.Second
	}
	if o.Repo == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("moat: %w", err)
		}
		o.Repo = wd
	}
	r := &runner{opts: o, res: &RunResult{}, secrets: secretReplacer(o.Env)}
	return r, nil
}

// cleanupCtx outlives the caller's ctx: cleanup must run after a cancel.
func cleanupCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

func (r *runner) run(ctx context.Context) (res *RunResult, err error) {
	res = r.res
	o := r.opts
	promptText := o.Prompt
	if o.PromptFile != "" {
		b, err := os.ReadFile(o.PromptFile)
		if err != nil {
			return nil, fmt.Errorf("moat: prompt file: %w", err)
		}
		promptText = string(b)
	}

	// A prompt that cannot be expanded fails before anything is made.
	if _, err := expandPrompt(promptText, o.PromptArgs, map[string]string{"SOURCE_BRANCH": "", "TARGET_BRANCH": ""}); err != nil {
		return nil, err
	}

	r.status("preparing a worktree")
	endPhase := r.phase("worktree")
	wt, err := worktree.Create(ctx, worktree.Options{Repo: o.Repo, Branch: o.Branch, CopyToWorktree: o.CopyToWorktree})
	endPhase()
	if err != nil {
		return nil, fmt.Errorf("moat: %w", err)
	}
	res.Branch = wt.Branch
	if wt.Temp {
		res.Branch = wt.TargetBranch
	}
	succeeded := false
	defer func() {
		cctx, cancel := cleanupCtx(ctx, 2*time.Minute)
		defer cancel()
		preserved, cerr := wt.Close(cctx)
		if preserved != "" {
			res.Kept = append(res.Kept, Kept{What: "worktree", Path: preserved, Reason: wt.PreservedReason,
				Fix: fmt.Sprintf("cd %s   # look, then commit, finish or discard the work; afterwards: git worktree remove %s", shell.Quote(preserved), shell.Quote(preserved))})
		}
		if wt.KeptBranch != "" && !res.kept("branch", wt.KeptBranch) {
			res.Kept = append(res.Kept, Kept{What: "branch", Path: wt.KeptBranch,
				Reason: "it holds commits that are merged nowhere",
				Fix:    fmt.Sprintf("git merge %s   # or drop them: git branch -D %s", wt.KeptBranch, wt.KeptBranch)})
		}
		if cerr != nil && err == nil && succeeded {
			err = fmt.Errorf("moat: cleaning up the worktree: %w", cerr)
		}
	}()
	repoRoot := wt.Repo
	if err := r.openLog(repoRoot); err != nil {
		return res, err
	}
	r.logf("run started: worktree %s, branch %s", wt.Path, wt.Branch)

	prompt, err := expandPrompt(promptText, o.PromptArgs, map[string]string{
		"SOURCE_BRANCH": wt.Branch, "TARGET_BRANCH": res.Branch,
	})
	if err != nil {
		return res, err
	}
	r.prompt = prompt

	for _, hook := range o.Hooks.OnWorktreeReady {
		r.status("host hook: %s", hook)
		if err := runHostHook(ctx, wt.Path, hook); err != nil {
			return res, err
		}
	}

	r.status("creating the sandbox (%s)", o.Sandbox.Name())
	endPhase = r.phase("create")
	h, err := o.Sandbox.Create(ctx, sandbox.CreateOptions{Env: o.Env})
	endPhase()
	if err != nil {
		return res, fmt.Errorf("moat: create %s sandbox: %w", o.Sandbox.Name(), err)
	}
	defer func() {
		if r.keepSandbox {
			res.Sandbox = h
			base, err := hostgit.Line(context.WithoutCancel(ctx), time.Minute, wt.Path, "rev-parse", "HEAD")
			if err != nil || base == "" {
				base = wt.BaseHead
			}
			id, _ := hostgit.ReadIdentity(context.WithoutCancel(ctx), time.Minute, repoRoot)
			path := h.WorkDir()
			if s, ok := h.(fmt.Stringer); ok { // which VM, say; WorkDir alone is the same in all
				path = s.String() + ":" + path
			}
			res.Kept = append(res.Kept, Kept{What: "sandbox", Path: path,
				Reason: "the agent's work could not be brought out of it, so it was not deleted",
				Fix:    keptSandboxFix(h.WorkDir(), repoRoot, base, filepath.Join(repoRoot, KeptWorkPatchHost), id)})
			r.emit(Event{Kind: EventWarning, Text: "the sandbox is kept: the agent's work is still in it (see the result for how to fetch it)"})
			// Spare it from garbage collection, where the sandbox can say so.
			if m, ok := h.(interface{ MarkKept(context.Context) error }); ok {
				mctx, cancel := cleanupCtx(ctx, 30*time.Second)
				if err := m.MarkKept(mctx); err != nil {
					r.emit(Event{Kind: EventWarning, Text: "marking the kept sandbox so that garbage collection spares it: " + err.Error()})
				}
				cancel()
			}
			return
		}
		r.status("closing the sandbox")
		defer r.phase("close")()
		cctx, cancel := cleanupCtx(ctx, 2*time.Minute)
		defer cancel()
		if cerr := h.Close(cctx); cerr != nil {
			r.emit(Event{Kind: EventWarning, Text: "closing the sandbox: " + cerr.Error()})
			if err == nil {
				err = fmt.Errorf("moat: close sandbox: %w", cerr)
			}
		}
	}()

	r.status("syncing the repository into the sandbox")
	endPhase = r.phase("sync in")
	err = r.retry(ctx, "syncing the repository in", func() error {
		return gitsync.SyncIn(ctx, wt.Path, h, gitsync.Options{})
	})
	endPhase()
	if err != nil {
		return res, fmt.Errorf("moat: %w", err)
	}
	endSetup := sync.OnceFunc(r.phase("setup"))
	defer endSetup() // also when setup fails
	for _, p := range wt.CopySkipped {
		r.emit(Event{Kind: EventWarning, Text: fmt.Sprintf("CopyToWorktree: %s not found in %s, skipped", p, repoRoot)})
	}
	for _, p := range wt.Copied {
		src := filepath.Join(repoRoot, filepath.FromSlash(p))
		r.status("copying %s into the sandbox", p)
		if err := h.CopyIn(ctx, src, filepath.ToSlash(p)); err != nil {
			return res, fmt.Errorf("moat: copy %s into the sandbox: %w", p, err)
		}
	}
	// Hooks first: one may install what the agent's CLI needs (Node.js).
	for _, hook := range o.Hooks.OnSandboxReady {
		r.status("sandbox hook: %s", hook)
		hctx, cancel := context.WithTimeout(ctx, hookTimeout)
		hr, err := h.Exec(hctx, hook, sandbox.ExecOptions{OnLine: func(l string) { r.status("  %s", l) }})
		cancel()
		if err != nil {
			return res, fmt.Errorf("moat: sandbox hook %q: %w", hook, err)
		}
		if hr.ExitCode != 0 {
			return res, fmt.Errorf("moat: sandbox hook %q exited %d: %s", hook, hr.ExitCode, lastLinesOf(hr.Stderr, 10))
		}
	}
	r.status("making sure the agent (%s) is installed in the sandbox", o.Agent.Name())
	ectx, cancel := context.WithTimeout(ctx, installTimeout)
	err = o.Agent.Ensure(ectx, h, func(line string) { r.status("%s", line) })
	cancel()
	if err != nil {
		return res, fmt.Errorf("moat: %w", err)
	}

	endSetup()

	var runErr error
	for i := 1; i <= o.MaxIterations; i++ {
		r.mu.Lock()
		r.iter = i
		r.mu.Unlock()
		r.emit(Event{Kind: EventIterationStart, Text: fmt.Sprintf("iteration %d/%d", i, o.MaxIterations)})
		endPhase = r.phase("agent")
		it, signal, ierr := r.iteration(ctx, h)
		endPhase()
		res.Iterations = append(res.Iterations, it)

		// The work so far comes home whatever happened to the agent.
		r.status("syncing the agent's work out of the sandbox")
		endPhase = r.phase("sync out")
		out, serr := r.syncOut(ctx, wt.Path, h)
		endPhase()
		if len(out.Refused) > 0 {
			r.emit(Event{Kind: EventWarning, Text: fmt.Sprintf("the sandbox sent %d path(s) moat will not write (outside the worktree, into .git, or through a link): %s",
				len(out.Refused), strings.Join(out.Refused, ", "))})
		}
		r.emit(Event{Kind: EventIterationEnd, Text: fmt.Sprintf("iteration %d/%d: %d commit(s)", i, o.MaxIterations, out.Commits)})
		if out.PatchDir != "" {
			var reason, fix string
			switch {
			case out.Failed != "":
				reason, fix = "applying the agent's work failed at: "+out.Failed, out.Recovery
				if len(out.Replaced) > 0 {
					reason += fmt.Sprintf("; the host's old versions of %d replaced file(s) are in replaced/", len(out.Replaced))
				}
			default: // everything landed; files it replaced are kept
				reason = fmt.Sprintf("the agent's untracked files replaced %d of yours; your versions are in replaced/", len(out.Replaced))
				fix = fmt.Sprintf("diff -r %s .   # compare; when done: rm -rf %s", shell.Quote(filepath.Join(out.PatchDir, "replaced")), shell.Quote(out.PatchDir))
			}
			res.Kept = append(res.Kept, Kept{What: "patches", Path: out.PatchDir, Reason: reason, Fix: fix})
		}
		last := false
		switch {
		case serr != nil && errors.Is(serr, gitsync.ErrSyncBaseNotMoved) && out.Failed == "":
			// Everything landed; only another iteration would go wrong
			// (it would bring the same commits again), so none runs.
			r.emit(Event{Kind: EventWarning, Text: fmt.Sprintf("the agent's work landed, but the sandbox could not record that, so no further iteration runs (it would bring the same commits again): %v", serr)})
			runErr, last = ierr, true
		case serr != nil && !out.Applied:
			r.keepSandbox = true
			runErr = errors.Join(ierr, fmt.Errorf("moat: %w; the sandbox is kept, with the agent's work in it", serr))
		case serr != nil:
			runErr = errors.Join(ierr, fmt.Errorf("moat: %w", serr))
		case out.Failed != "":
			runErr = errors.Join(ierr, fmt.Errorf("%w (%s); the patches are kept in %s", ErrSyncOut, out.Failed, out.PatchDir))
		default:
			runErr = ierr
		}
		if runErr != nil || last {
			break
		}
		if signal != "" {
			res.CompletionSignal = signal
			r.status("the agent signalled completion after %d iteration(s)", i)
			break
		}
	}
	r.mu.Lock()
	r.iter = 0
	r.mu.Unlock()

	if runErr == nil && ctx.Err() != nil {
		runErr = fmt.Errorf("moat: %w before the merge", ctx.Err())
	}
	if runErr != nil {
		// A failed run is not merged into the user's branch; its commits
		// stay on the run's branch, and the result says where.
		commits, cerr := wt.Commits(context.WithoutCancel(ctx))
		switch {
		case cerr != nil:
			r.emit(Event{Kind: EventWarning, Text: "listing the run's commits: " + cerr.Error()})
		case wt.Temp && len(commits) > 0:
			res.Kept = append(res.Kept, Kept{What: "branch", Path: wt.Branch,
				Reason: fmt.Sprintf("the run failed after %d commit(s); they were not merged into %s", len(commits), wt.TargetBranch),
				Fix:    fmt.Sprintf("git merge %s   # if you want them", wt.Branch)})
			wt.Keep()
		case !wt.Temp:
			res.Commits = toCommits(commits) // they are on the named branch
		}
		return res, runErr
	}

	if wt.Temp {
		r.status("merging into %s", wt.TargetBranch)
		endPhase = r.phase("merge")
		// Once started, a merge in the user's checkout is never killed half way.
		mctx, cancel := cleanupCtx(ctx, 2*time.Minute)
		mr, merr := wt.Merge(mctx)
		cancel()
		endPhase()
		if merr != nil {
			var conflict *worktree.MergeConflictError
			if errors.As(merr, &conflict) {
				res.Kept = append(res.Kept, Kept{What: "branch", Path: wt.Branch,
					Reason: fmt.Sprintf("it conflicts with %s in %s", conflict.Target, strings.Join(conflict.Files, ", ")), Fix: conflict.Fix})
				return res, fmt.Errorf("moat: %w: the run's commits conflict with %s in %s; they are kept on %s",
					ErrMergeConflict, conflict.Target, strings.Join(conflict.Files, ", "), wt.Branch)
			}
			return res, fmt.Errorf("moat: %w", merr)
		}
		res.Commits = toCommits(mr.Commits)
	} else {
		commits, cerr := wt.Commits(ctx)
		if cerr != nil {
			return res, fmt.Errorf("moat: %w", cerr)
		}
		res.Commits = toCommits(commits)
	}
	succeeded = true
	return res, nil
}

const (
	hookTimeout    = 15 * time.Minute // one OnSandboxReady or OnWorktreeReady hook
	installTimeout = 15 * time.Minute // installing the agent's CLI
)

// syncOut brings the agent's work out under its own deadline: it runs
// after a cancel or timeout too. A failure before anything changed on the
// host (a dropped connection, most likely) is retried, since the work
// exists only in the sandbox, which is deleted afterwards; a failure after
// that is not, as a second git am would apply the same commits twice.
func (r *runner) syncOut(ctx context.Context, dir string, h sandbox.Handle) (gitsync.OutResult, error) {
	sctx, cancel := cleanupCtx(ctx, 5*time.Minute)
	defer cancel()
	var out gitsync.OutResult
	err := r.retry(sctx, "syncing the agent's work out", func() error {
		var err error
		out, err = gitsync.SyncOut(sctx, dir, h, gitsync.Options{})
		if err != nil && out.Applied {
			return permanent{err}
		}
		return err
	})
	return out, err
}

// KeptWorkPatch is where the recovery steps of a kept sandbox put the
// agent's work, relative to the sandbox's WorkDir.
const KeptWorkPatch = ".git/moat-work.patch"

// KeptWorkPatchHost is where, relative to the repository, those steps
// have you copy it.
const KeptWorkPatchHost = "moat-work.patch"

// keptSandboxFix says how to bring the work out of a kept sandbox by hand:
// everything the agent did (what it left uncommitted is committed first,
// with hooks and signing off) as one patch file, applied on a new branch
// at base, the host worktree's HEAD, in a worktree of its own so your
// checkout is left alone. patch is where on the host the file goes.
func keptSandboxFix(workDir, repo, base, patch string, id hostgit.Identity) string {
	q := shell.Quote
	stamp := time.Now().Format("20060102-150405")
	branch, dir := "moat/recovered-"+stamp, ".moat/worktrees/recovered-"+stamp
	git := "git"
	if !id.Configured {
		git += " -c user.name=" + q(id.Name) + " -c user.email=" + q(id.Email)
	}
	return "# 1. in the sandbox (how to reach it is below): commit what is left, then write the work to one file\n" +
		"cd " + q(workDir) + " && git -c core.fsmonitor=false add -A && { git diff --cached --quiet || git -c core.hooksPath=/dev/null -c commit.gpgSign=false commit --no-verify -qm 'moat: work the agent left uncommitted'; } && git format-patch -k --binary --stdout " +
		gitsync.SyncBaseRef + "..HEAD > " + KeptWorkPatch + "\n" +
		"# 2. copy " + q(workDir+"/"+KeptWorkPatch) + " from the sandbox to " + q(patch) + ", then:\n" +
		"cd " + q(repo) + " && git worktree add -q -b " + branch + " " + dir + " " + base + " && " + git + " -C " + dir + " am -3 -k " + q(patch) + "\n" +
		"# 3. merge " + branch + " where you want it, then remove the sandbox"
}

// syncAttempts and syncBackoff bound the retries of a sync step.
var (
	syncAttempts = 3
	syncBackoff  = time.Second
)

// permanent marks an error retry must not retry.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// retry runs step up to syncAttempts times while it fails for a reason
// that may pass, such as a dropped connection (the sandbox redials on the
// next call); a closed sandbox, a finished ctx, a refused SSH host key or
// login, or a permanent error end it at once. Each retry is announced as a warning.
func (r *runner) retry(ctx context.Context, what string, step func() error) error {
	var first error
	for attempt := 1; ; attempt++ {
		err := step()
		var p permanent
		final := errors.As(err, &p)
		if final {
			err = p.error
		}
		if first == nil {
			first = err
		}
		if err == nil || final || attempt == syncAttempts || ctx.Err() != nil || errors.Is(err, sandbox.ErrClosed) || sshx.IsRefused(err) {
			if err != nil && attempt > 1 && err.Error() != first.Error() {
				// The first failure is the cause; later ones may only be
				// its consequences.
				err = fmt.Errorf("%w (after %d attempts; the first failed with: %v)", err, attempt, first)
			}
			return err
		}
		wait := syncBackoff * time.Duration(attempt)
		r.emit(Event{Kind: EventWarning, Text: fmt.Sprintf("%s failed (%v); trying again in %s", what, err, wait)})
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func toCommits(cs []worktree.Commit) []Commit {
	out := make([]Commit, 0, len(cs))
	for _, c := range cs {
		out = append(out, Commit{SHA: c.SHA, Subject: c.Subject})
	}
	return out
}

// kept reports whether the result already keeps what at path.
func (res *RunResult) kept(what, path string) bool {
	for _, k := range res.Kept {
		if k.What == what && k.Path == path {
			return true
		}
	}
	return false
}

// runHostHook runs a hook command on the host in dir, with a timeout.
func runHostHook(ctx context.Context, dir, hook string) error {
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", "--", hook)
	cmd.Dir = dir
	// A hook that leaves a background process holding its output must not
	// hang the run.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("moat: host hook %q failed: %w\n%s", hook, err, lastLinesOf(string(out), 10))
	}
	return nil
}
