package moat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/gitsync"
	"github.com/moatdev/moat/internal/land"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

// A run is six phases, each a function whose result is a value:
//
//	prepare    → plan        what the run starts from and lands on (no sandbox yet)
//	provision  → *sandboxed  the sandbox, created while the base is packed, synced in
//	setup      → error       copies, sandbox hooks, the agent's CLI
//	loop       → loopResult  the agent's iterations, each followed by a sync out
//	land       → landResult  the commits merged or put on their branch
//	finish     → error       the sandbox closed or kept; what is kept, and why
//
// finish is the one place that decides what is kept for recovery and
// writes what the user reads about it.

const (
	hookTimeout    = 15 * time.Minute // one OnSandboxReady or OnWorktreeReady hook
	installTimeout = 15 * time.Minute // installing the agent's CLI
)

// plan is what prepare decided.
type plan struct {
	repo      hostgit.Repo
	runID     string
	refPrefix string // refs/moat/runs/<run-id>
	base      string // the commit the run starts from
	target    string // merge-to-head: the branch merged into; "" with RunOptions.Branch
	branch    string // the run's branch: checked out in the sandbox, moat/<run-id> or RunOptions.Branch
	keep      string // the branch that keeps commits that cannot land: moat/<run-id>
	identity  hostgit.Identity
	excludes  string // set by provision
	// noteChanges says the run leaves the working tree's uncommitted
	// changes out (a run; exec takes them), and the user is told so.
	noteChanges bool
	tmp         string // host directory for packs and bundles
	fp          *Footprint
}

func (p *plan) cleanup() {
	if p.tmp != "" && os.RemoveAll(p.tmp) == nil {
		p.fp.drop(footTemp)
	}
}

// refsKept is the footprint entry of the run's refs; head is the agent's
// head brought home so far, "" when none came yet.
func (p *plan) refsKept(head string) Kept {
	q := shell.Quote
	git := "git -C " + q(p.repo.TopLevel)
	remove := git + " for-each-ref --format='delete %(refname)' " + p.refPrefix + "/ | " + git + " update-ref --stdin"
	k := Kept{What: "refs", Path: p.refPrefix + "/", Reason: "the run's own refs in " + p.repo.TopLevel, Fix: "# remove them: " + remove}
	if head != "" && head != p.base {
		k.Reason += "; the agent's commits brought home so far are at " + p.refPrefix + "/head"
		k.Fix = "# keep the agent's commits on a branch: " + git + " branch " + p.keep + " " + p.refPrefix + "/head\n" + k.Fix
	}
	return k
}

func (r *runner) run(ctx context.Context) (*RunResult, error) {
	res := r.res
	p, err := r.prepare(ctx)
	if err != nil {
		return res, err
	}
	defer p.cleanup()
	sb, err := r.provision(ctx, p)
	if err != nil {
		r.dropRunRefs(ctx, p)
		return res, err
	}
	loop := loopResult{head: p.base}
	if err := r.setup(ctx, p, sb.h); err != nil {
		loop.err = err
	} else {
		loop = r.loop(ctx, p, sb.h)
	}
	// Once the work is home the sandbox is not needed: it closes while
	// the commits land.
	if !loop.lost {
		sb.closed = r.startClose(ctx, sb)
	}
	landed := r.land(ctx, p, loop)
	return res, r.finish(ctx, p, sb, loop, landed)
}

// prepare reads the prompt, finds the repository, and decides the run's
// base, branches and id. It makes nothing but the run's base ref and its
// log; host hooks, when configured, run here in a worktree of their own.
func (r *runner) prepare(ctx context.Context) (*plan, error) {
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
	if err := CheckPrompt(promptText, o.PromptArgs); err != nil {
		return nil, err
	}
	defer r.phase("prepare")()
	p, err := newPlan(ctx, o.Repo, r.runID())
	r.res.RunID = r.runID()
	if err != nil {
		return nil, err
	}
	p.fp = o.Footprint
	p.fp.setRunID(p.runID)
	p.fp.put(footTemp, Kept{What: "directory", Path: p.tmp, Reason: "moat's temporary files for the run", Fix: "rm -rf -- " + shell.Quote(p.tmp)})
	top := p.repo.TopLevel
	ok := false
	defer func() {
		if !ok {
			p.cleanup()
		}
	}()
	cur, err := hostgit.Line(ctx, 0, top, "symbolic-ref", "-q", "--short", "HEAD")
	if err != nil && hostgit.ExitCode(err) != 1 {
		return nil, fmt.Errorf("moat: %w", err)
	}
	if o.Base != "" {
		if p.base, _ = hostgit.Line(ctx, 0, top, "rev-parse", "-q", "--verify", "--end-of-options", o.Base+"^{commit}"); p.base == "" {
			return nil, fmt.Errorf("moat: the base %q is not a branch or commit of %s", o.Base, top)
		}
	}
	if o.Branch != "" {
		if err := hostgit.CheckBranchName(ctx, top, o.Branch); err != nil {
			return nil, fmt.Errorf("moat: %w", err)
		}
		p.branch = o.Branch
		// An existing branch: the run continues from its tip.
		if tip, _ := hostgit.Line(ctx, 0, top, "rev-parse", "-q", "--verify", "refs/heads/"+o.Branch+"^{commit}"); tip != "" {
			p.base = tip
		}
		r.res.Branch = o.Branch
	} else {
		if cur == "" {
			return nil, fmt.Errorf("moat: %s has a detached HEAD, so there is no branch to merge the run into; check out a branch, or keep the commits on a branch of their own with --branch NAME", top)
		}
		p.target, p.branch = cur, p.keep
		r.res.Branch = cur
	}
	if err := r.openLog(top); err != nil {
		return nil, err
	}
	r.logf("run %s started: base %s, branch %s", p.runID, p.base[:12], p.branch)
	prompt, err := expandPrompt(promptText, o.PromptArgs, map[string]string{"SOURCE_BRANCH": p.branch, "TARGET_BRANCH": r.res.Branch})
	if err != nil {
		return nil, err
	}
	r.prompt = prompt
	if len(o.Hooks.OnWorktreeReady) > 0 {
		if p.base, err = r.hostHooks(ctx, p); err != nil {
			return nil, err
		}
	}
	if err := p.recordBase(ctx); err != nil {
		return nil, err
	}
	p.noteChanges = true
	ok = true
	return p, nil
}

// newPlan finds the repository around dir and its HEAD, and gives the run
// its id and a temporary directory.
func newPlan(ctx context.Context, dir, runID string) (*plan, error) {
	repo, err := hostgit.Locate(ctx, 0, dir)
	if err != nil {
		return nil, fmt.Errorf("moat: %w", err)
	}
	p := &plan{repo: repo, runID: runID}
	p.refPrefix = "refs/moat/runs/" + p.runID
	p.keep = "moat/" + p.runID
	if p.base, err = hostgit.Head(ctx, 0, repo.TopLevel); err != nil {
		return nil, fmt.Errorf("moat: %w", err)
	}
	if err := hostgit.EnsureExcluded(repo.CommonDir); err != nil {
		return nil, fmt.Errorf("moat: %w", err)
	}
	if p.identity, err = hostgit.ReadIdentity(ctx, 0, repo.TopLevel); err != nil {
		return nil, fmt.Errorf("moat: %w", err)
	}
	if p.tmp, err = os.MkdirTemp("", "moat-run-"); err != nil {
		return nil, fmt.Errorf("moat: %w", err)
	}
	return p, nil
}

// recordBase points refs/moat/runs/<run-id>/base at the base: the ref the
// sync in packs.
func (p *plan) recordBase(ctx context.Context) error {
	p.fp.put(footRefs, p.refsKept(""))
	if _, err := hostgit.Run(ctx, 0, p.repo.TopLevel, "update-ref", p.refPrefix+"/base", p.base, ""); err != nil {
		return fmt.Errorf("moat: recording the run's base: %w", err)
	}
	return nil
}

// hostHooks runs the OnWorktreeReady hooks in a host worktree of their
// own, detached at the base, and returns the commit the run starts from:
// the worktree's HEAD afterwards, so commits a hook makes travel too.
func (r *runner) hostHooks(ctx context.Context, p *plan) (string, error) {
	dir := filepath.Join(p.repo.MainRoot, hostgit.MoatDir, "worktrees", p.runID)
	p.fp.put(footHookTree, Kept{What: "worktree", Path: dir, Reason: "the host hooks' worktree",
		Fix: "git -C " + shell.Quote(p.repo.TopLevel) + " worktree remove --force " + shell.Quote(dir)})
	if _, err := hostgit.Run(ctx, 0, p.repo.TopLevel, "worktree", "add", "-q", "--detach", dir, p.base); err != nil {
		return "", fmt.Errorf("moat: a worktree for the host hooks: %w", err)
	}
	defer func() {
		cctx, cancel := cleanupCtx(ctx, time.Minute)
		defer cancel()
		if _, err := hostgit.Run(cctx, 0, p.repo.TopLevel, "worktree", "remove", "--force", dir); err != nil {
			r.emit(Event{Kind: EventWarning, Text: fmt.Sprintf("removing the host hooks' worktree %s: %v", dir, err)})
		} else {
			p.fp.drop(footHookTree)
		}
	}()
	for _, hook := range r.opts.Hooks.OnWorktreeReady {
		r.status("host hook: %s", hook)
		if err := runHostHook(ctx, dir, hook); err != nil {
			return "", err
		}
	}
	head, err := hostgit.Line(ctx, 0, dir, "rev-parse", "--verify", "HEAD^{commit}")
	if err != nil {
		return "", fmt.Errorf("moat: %w", err)
	}
	return head, nil
}

// sandboxed is a sandbox provision made and synced in.
type sandboxed struct {
	h      sandbox.Handle
	closed <-chan error  // from startClose, once closing has begun
	took   time.Duration // how long the close took, once closed is done
}

// provision creates the sandbox while the base is packed on the host,
// then syncs the pack in. On failure nothing is left: the sandbox is
// closed.
func (r *runner) provision(ctx context.Context, p *plan) (*sandboxed, error) {
	o := r.opts
	type packed struct {
		b   gitsync.Base
		err error
	}
	bch := make(chan packed, 1)
	go func() {
		end := r.phase("pack")
		b, err := gitsync.PackBase(ctx, 0, p.repo.TopLevel, p.tmp, p.refPrefix+"/base")
		end()
		bch <- packed{b, err}
	}()
	r.status("creating the sandbox (%s)", sandbox.Describe(o.Sandbox))
	end := r.phase("create")
	o.Footprint.put(footSandbox, Kept{What: "sandbox", Path: "(being created: " + sandbox.Describe(o.Sandbox) + ")",
		Reason: "moat was creating the run's sandbox; it may exist, holding nothing but the repository",
		Fix:    "moat sandbox ls   # find it; remove it with: moat sandbox gc"})
	h, err := o.Sandbox.Create(ctx, sandbox.CreateOptions{Env: o.Env,
		Labels: map[string]string{sandbox.LabelRepo: p.repo.TopLevel, sandbox.LabelRun: p.runID}})
	end()
	if err != nil {
		o.Footprint.drop(footSandbox)
	} else {
		o.Footprint.putSandbox(h, r.sandboxKept(p, h, p.base, "the run's sandbox; the agent's newest work may be only in it"))
	}
	// The excludes are read, and what the run leaves out said, while the
	// pack is still being made.
	p.excludes = gitsync.HostExcludes(ctx, p.repo, gitsync.Options{Logf: r.logf})
	if p.noteChanges {
		r.noteUncommitted(ctx, p)
	}
	r.noteSubmodules(ctx, p)
	bd := <-bch
	if err != nil {
		return nil, fmt.Errorf("moat: create %s sandbox: %w", o.Sandbox.Name(), err)
	}
	sb := &sandboxed{h: h}
	fail := func(err error) (*sandboxed, error) {
		r.closeSandbox(ctx, sb)
		return nil, err
	}
	if bd.err != nil {
		return fail(fmt.Errorf("moat: sync-in: %w", bd.err))
	}
	r.status("syncing the repository into the sandbox")
	end = r.phase("sync in")
	err = r.retry(ctx, "syncing the repository in", func() error {
		return gitsync.SyncIn(ctx, h, gitsync.In{Base: bd.b, Branch: p.branch, Identity: p.identity, Excludes: p.excludes}, gitsync.Options{Logf: r.logf})
	})
	end()
	if err != nil {
		return fail(fmt.Errorf("moat: %w", err))
	}
	return sb, nil
}

// setup copies CopyToWorktree in, runs the sandbox hooks and makes sure
// the agent's CLI is there.
func (r *runner) setup(ctx context.Context, p *plan, h sandbox.Handle) error {
	o := r.opts
	defer r.phase("setup")()
	for _, rel := range o.CopyToWorktree {
		src := filepath.Join(p.repo.TopLevel, filepath.FromSlash(rel))
		if !filepath.IsLocal(filepath.FromSlash(rel)) {
			return fmt.Errorf("moat: CopyToWorktree: %s is not a path inside the repository", rel)
		}
		if _, err := os.Lstat(src); err != nil {
			r.emit(Event{Kind: EventWarning, Text: fmt.Sprintf("CopyToWorktree: %s not found in %s, skipped", rel, p.repo.TopLevel)})
			continue
		}
		// A link committed in the repository must not carry a host file
		// (~/.ssh, say) into the sandbox: what is copied stays inside.
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			return fmt.Errorf("moat: CopyToWorktree: %s: %w", rel, err)
		}
		if !insideDir(p.repo.TopLevel, real) {
			return fmt.Errorf("moat: CopyToWorktree: %s leads outside the repository (a symbolic link to %s); copy only what is in it", rel, real)
		}
		r.status("copying %s into the sandbox", rel)
		if err := h.CopyIn(ctx, src, filepath.ToSlash(rel)); err != nil {
			return fmt.Errorf("moat: copy %s into the sandbox: %w", rel, err)
		}
	}
	// Hooks first: one may install what the agent's CLI needs (Node.js).
	for _, hook := range o.Hooks.OnSandboxReady {
		r.status("sandbox hook: %s", hook)
		hctx, cancel := context.WithTimeout(ctx, hookTimeout)
		hr, err := h.Exec(hctx, hook, sandbox.ExecOptions{OnLine: func(l string) { r.status("  %s", l) }})
		cancel()
		if err != nil {
			return fmt.Errorf("moat: sandbox hook %q: %w", hook, err)
		}
		if hr.ExitCode != 0 {
			if tail := strings.TrimSpace(lastLinesOf(hr.Stderr, 10)); tail != "" {
				return fmt.Errorf("moat: sandbox hook %q exited %d: %s", hook, hr.ExitCode, tail)
			}
			return fmt.Errorf("moat: sandbox hook %q exited %d and printed nothing on stderr", hook, hr.ExitCode)
		}
	}
	if len(o.CopyToWorktree) > 0 || len(o.Hooks.OnSandboxReady) > 0 {
		if err := gitsync.ExcludeSetupFiles(ctx, h, gitsync.Options{Logf: r.logf}); err != nil {
			return fmt.Errorf("moat: %w", err)
		}
	}
	r.status("making sure the agent (%s) is installed in the sandbox", o.Agent.Name())
	ectx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	if err := o.Agent.Ensure(ectx, h, func(line string) { r.status("%s", line) }); err != nil {
		return fmt.Errorf("moat: %w", err)
	}
	return nil
}

// loopResult is what the iterations left.
type loopResult struct {
	head        string   // the agent's last head the host has (the base when none came)
	uncommitted string   // a commit of uncommitted work that could not go on head
	unfinished  string   // the operation the agent left unfinished then
	replaced    []string // refs keeping history the agent rewrote
	err         error    // why the run failed, nil when it did not
	lost        bool     // the last sync out failed: the newest work is only in the sandbox
}

// loop runs the agent up to MaxIterations times; the work comes home after
// each iteration, whatever happened to the agent.
func (r *runner) loop(ctx context.Context, p *plan, h sandbox.Handle) loopResult {
	o := r.opts
	lr := loopResult{head: p.base}
	for i := 1; i <= o.MaxIterations; i++ {
		r.mu.Lock()
		r.iter = i
		r.mu.Unlock()
		r.emit(Event{Kind: EventIterationStart, Text: fmt.Sprintf("iteration %d/%d", i, o.MaxIterations)})
		end := r.phase("agent")
		it, signal, ierr := r.iteration(ctx, h)
		end()
		r.res.Iterations = append(r.res.Iterations, it)
		if errors.Is(ierr, sandbox.ErrStillRunning) {
			// The agent may still be writing to the tree: what a sync out
			// read now could be half made. The sandbox holds the work.
			lr.lost = true
			lr.err = fmt.Errorf("%w; the sandbox is kept, with the agent's work in it", ierr)
			r.emit(Event{Kind: EventIterationEnd, Text: fmt.Sprintf("iteration %d/%d: its work was not brought out", i, o.MaxIterations)})
			break
		}

		r.status("syncing the agent's work out of the sandbox")
		end = r.phase("sync out")
		out, serr := r.syncOut(ctx, p, h, lr.head)
		end()
		n := 0
		if serr == nil {
			n = out.New
			lr.head = out.Head
			p.fp.put(footRefs, p.refsKept(lr.head))
			o.Footprint.putSandbox(h, r.sandboxKept(p, h, lr.head, "the run's sandbox; the agent's work after what came home may be only in it"))
			if out.Uncommitted != "" {
				lr.uncommitted, lr.unfinished = out.Uncommitted, out.Unfinished
			}
			if out.Replaced != "" {
				lr.replaced = append(lr.replaced, out.Replaced)
				r.emit(Event{Kind: EventWarning, Text: fmt.Sprintf("the agent rewrote history moat had already brought home (reset, amend or rebase); the old history is kept at %s", out.Replaced)})
			}
			if out.Committed != "" {
				r.emit(Event{Kind: EventWarning, Text: "the agent left uncommitted work; moat committed it as \"" + gitsync.DefaultLabel + "\""})
			}
		}
		done := fmt.Sprintf("iteration %d/%d: %d commit(s)", i, o.MaxIterations, n)
		if serr != nil {
			done = fmt.Sprintf("iteration %d/%d: the agent's work could not be brought out", i, o.MaxIterations)
		}
		r.emit(Event{Kind: EventIterationEnd, Text: done})
		if serr != nil {
			lr.lost = true
			lr.err = errors.Join(ierr, fmt.Errorf("moat: %w; the agent's work is kept (see what was kept, and how to fetch it)", serr))
			break
		}
		if ierr != nil {
			lr.err = ierr
			break
		}
		if signal != "" {
			r.res.CompletionSignal = signal
			r.status("the agent signalled completion after %d iteration(s)", i)
			break
		}
	}
	r.mu.Lock()
	r.iter = 0
	r.mu.Unlock()
	if lr.err == nil && ctx.Err() != nil {
		lr.err = fmt.Errorf("moat: %w before the merge", ctx.Err())
	}
	return lr
}

// countNew counts the commits in head beyond known.
func (r *runner) countNew(ctx context.Context, p *plan, known, head string) int {
	if head == known {
		return 0
	}
	out, err := hostgit.Line(context.WithoutCancel(ctx), 0, p.repo.TopLevel, "rev-list", "--count", head, "^"+known)
	if err != nil {
		return 0
	}
	var n int
	fmt.Sscan(out, &n)
	return n
}

// syncOut brings the agent's work out under its own deadline: it runs
// after a cancel or timeout too. Nothing on the host changes until the
// last step, so a failure (a dropped connection, most likely) is retried.
func (r *runner) syncOut(ctx context.Context, p *plan, h sandbox.Handle, known string) (gitsync.OutResult, error) {
	sctx, cancel := cleanupCtx(ctx, 5*time.Minute)
	defer cancel()
	var out gitsync.OutResult
	err := r.retry(sctx, "syncing the agent's work out", func() error {
		var err error
		out, err = gitsync.SyncOut(sctx, h, gitsync.Out{Repo: p.repo.TopLevel, GitDir: p.repo.CommonDir, RefPrefix: p.refPrefix, Known: known, Limits: r.opts.syncLimits(), TempDir: p.tmp}, gitsync.Options{Logf: r.logf})
		var le *gitsync.LimitError
		if errors.As(err, &le) || errors.Is(err, gitsync.ErrHostileBundle) {
			return permanent{err}
		}
		return err
	})
	return out, err
}

// landResult is what land did.
type landResult struct {
	res    land.Result
	err    error // why the commits did not land (a *land.NotLandedError, mostly)
	landed bool
}

// land brings the commits onto the run's branch. A failed run's commits
// are never merged into the user's branch (finish keeps them on their
// own); with a named branch, the branch is the run's own and gets them.
func (r *runner) land(ctx context.Context, p *plan, lr loopResult) landResult {
	if lr.err != nil && p.target != "" {
		return landResult{}
	}
	if lr.head == p.base {
		return landResult{landed: true, res: land.Result{Branch: r.res.Branch, NothingToDo: true}}
	}
	if p.target != "" {
		r.status("merging into %s", p.target)
		git := "git -C " + shell.Quote(p.repo.TopLevel)
		p.fp.put(footMerge, Kept{What: "merge", Path: p.repo.TopLevel,
			Reason: "moat was merging the run's commits into " + p.target + " here; the merge may be half done",
			Fix:    git + " status   # when it says a merge is in progress, undo it: " + git + " merge --abort"})
		defer p.fp.drop(footMerge)
	} else {
		r.status("bringing the commits onto %s", p.branch)
	}
	defer r.phase("merge")()
	// Once started, a merge in the user's checkout is never killed half way.
	mctx, cancel := cleanupCtx(ctx, 2*time.Minute)
	defer cancel()
	lo := land.Options{Repo: p.repo.TopLevel, GitDir: p.repo.CommonDir, Identity: &p.identity,
		Base: p.base, Head: lr.head, Target: p.target, KeepBranch: p.keep, Logf: r.logf}
	if p.target == "" {
		lo.Branch = p.branch
	}
	res, err := land.Land(mctx, lo)
	return landResult{res: res, err: err, landed: err == nil}
}

// finish closes the sandbox, or keeps it when it holds the only copy of
// the work; keeps on a branch the commits that did not land; and returns
// the run's error. It is the one place that decides what is kept.
func (r *runner) finish(ctx context.Context, p *plan, sb *sandboxed, lr loopResult, ld landResult) error {
	res := r.res
	runErr := lr.err
	if ld.landed {
		res.Commits = toCommits(ld.res.Commits)
		if m := ld.res.Merge; m != nil {
			res.MergeCommit = &Commit{SHA: m.SHA, Subject: m.Subject}
		}
	}
	var nl *land.NotLandedError
	switch {
	case errors.As(ld.err, &nl):
		r.keep(Kept{What: "branch", Path: nl.Kept, Reason: nl.Reason, Fix: nl.Fix})
		// A conflict or a refusal: either way the commits wait on their
		// branch for the user.
		runErr = errors.Join(runErr, notMerged{nl})
	case ld.err != nil:
		runErr = errors.Join(runErr, fmt.Errorf("moat: %w", ld.err))
	case runErr != nil && lr.head != p.base && !ld.landed:
		// A failed run: its commits stay on their own branch.
		cctx, cancel := cleanupCtx(ctx, time.Minute)
		_, err := hostgit.Run(cctx, 0, p.repo.TopLevel, "update-ref", "refs/heads/"+p.keep, lr.head)
		cancel()
		if err != nil {
			r.emit(Event{Kind: EventWarning, Text: fmt.Sprintf("keeping the run's commits on %s: %v (they are at %s/head)", p.keep, err, p.refPrefix)})
		} else {
			n := r.countNew(ctx, p, p.base, lr.head)
			into := r.res.Branch
			r.keep(Kept{What: "branch", Path: p.keep,
				Reason: fmt.Sprintf("the run failed after %d commit(s); they were not merged into %s", n, into),
				Fix:    fmt.Sprintf("git merge %s   # if you want them; or drop them: git branch -D %s", p.keep, p.keep)})
		}
	}
	if lr.uncommitted != "" {
		b := p.keep + "-uncommitted"
		cctx, cancel := cleanupCtx(ctx, time.Minute)
		if _, err := hostgit.Run(cctx, 0, p.repo.TopLevel, "update-ref", "refs/heads/"+b, lr.uncommitted); err == nil {
			r.keep(Kept{What: "branch", Path: b,
				Reason: fmt.Sprintf("the agent left uncommitted work during an unfinished %s, so it was not put on the run's branch", strings.TrimSpace(lr.unfinished)),
				Fix:    fmt.Sprintf("git show --stat %s   # look; take it with: git cherry-pick %s", b, b)})
		}
		cancel()
	}
	for _, ref := range lr.replaced {
		r.keep(Kept{What: "ref", Path: ref,
			Reason: "the agent rewrote history moat had brought home; the old history stays reachable here",
			Fix:    fmt.Sprintf("git log --oneline %s   # when you no longer need it: git update-ref -d %s", ref, ref)})
	}
	if lr.lost {
		r.keepSandbox(ctx, p, sb, lr.head)
	} else if cerr := r.waitClose(ctx, sb); cerr != nil && runErr == nil {
		runErr = fmt.Errorf("moat: close sandbox: %w", cerr)
	}
	// Kept branches hold all they need; a kept ref is one of the run's
	// refs, and a kept sandbox's recovery starts from them.
	if !slices.ContainsFunc(res.Kept, func(k Kept) bool { return k.What != "branch" }) {
		r.dropRunRefs(ctx, p)
	}
	return runErr
}

// keep adds k to what the run keeps for recovery.
func (r *runner) keep(k Kept) {
	r.res.Kept = append(r.res.Kept, k)
	r.opts.Footprint.put("kept "+k.What+" "+k.Path, k)
}

// dropRunRefs removes refs/moat/runs/<run-id>/ once nothing there is needed.
func (r *runner) dropRunRefs(ctx context.Context, p *plan) {
	cctx, cancel := cleanupCtx(ctx, time.Minute)
	defer cancel()
	out, err := hostgit.Run(cctx, 0, p.repo.TopLevel, "for-each-ref", "--format=delete %(refname)", p.refPrefix+"/")
	if err != nil {
		return
	}
	if out == "" {
		p.fp.drop(footRefs)
		return
	}
	if _, err := (hostgit.Cmd{Dir: p.repo.TopLevel, Args: []string{"update-ref", "--stdin"}, Stdin: strings.NewReader(out)}).Run(cctx); err != nil {
		r.logf("removing %s: %v", p.refPrefix, err)
		return
	}
	p.fp.drop(footRefs)
}

// startClose starts closing the sandbox; waitClose waits for it.
func (r *runner) startClose(ctx context.Context, sb *sandboxed) <-chan error {
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		cctx, cancel := cleanupCtx(ctx, 2*time.Minute)
		defer cancel()
		err := sb.h.Close(cctx)
		sb.took = time.Since(start)
		if err == nil {
			r.opts.Footprint.drop(footSandbox)
		}
		done <- err
	}()
	return done
}

// waitClose finishes what startClose began (or closes the sandbox now),
// saying so as closeSandbox does.
func (r *runner) waitClose(ctx context.Context, sb *sandboxed) error {
	if sb.closed == nil {
		return r.closeSandbox(ctx, sb)
	}
	r.status("closing the sandbox")
	err := <-sb.closed
	r.addPhase("close", sb.took)
	if err != nil {
		r.emit(Event{Kind: EventWarning, Text: "closing the sandbox: " + err.Error()})
	}
	return err
}

func (r *runner) closeSandbox(ctx context.Context, sb *sandboxed) error {
	r.status("closing the sandbox")
	defer r.phase("close")()
	cctx, cancel := cleanupCtx(ctx, 2*time.Minute)
	defer cancel()
	if err := sb.h.Close(cctx); err != nil {
		r.emit(Event{Kind: EventWarning, Text: "closing the sandbox: " + err.Error()})
		return err
	}
	r.opts.Footprint.drop(footSandbox)
	return nil
}

// keepSandbox leaves the sandbox running: it holds the only copy of the
// newest work. The result says how to fetch it.
func (r *runner) keepSandbox(ctx context.Context, p *plan, sb *sandboxed, known string) {
	h := sb.h
	r.res.Sandbox = h
	k := r.sandboxKept(p, h, known, "the agent's work could not be brought out of it, so it was not deleted")
	r.res.Kept = append(r.res.Kept, k)
	r.opts.Footprint.putSandbox(h, k)
	r.res.keptSave, r.res.keptRepo = keptSaveCommand(h.WorkDir(), known, p.identity), p.repo.TopLevel
	r.emit(Event{Kind: EventWarning, Text: "the sandbox is kept: the agent's work is still in it (see the result for how to fetch it)"})
	// Spare it from garbage collection, where the sandbox can say so.
	if m, ok := h.(sandbox.Keeper); ok {
		mctx, cancel := cleanupCtx(ctx, 30*time.Second)
		if err := m.MarkKept(mctx); err != nil {
			r.emit(Event{Kind: EventWarning, Text: "marking the kept sandbox so that garbage collection spares it: " + err.Error()})
		}
		cancel()
	}
}

// sandboxKept describes the sandbox h for recovery: known is the agent's
// commit the host has.
func (r *runner) sandboxKept(p *plan, h sandbox.Handle, known, reason string) Kept {
	path := h.WorkDir()
	if n, ok := h.(sandbox.Named); ok { // which VM, say; WorkDir alone is the same in all
		path = n.SandboxName() + ":" + path
	}
	return Kept{What: "sandbox", Path: path, Reason: reason,
		Fix: keptSandboxFix(h.WorkDir(), p.repo.TopLevel, known, filepath.Join(p.repo.TopLevel, KeptWorkBundleHost), p.identity)}
}

// KeptWorkBundle is where the recovery steps of a kept sandbox put the
// agent's work, relative to the sandbox's WorkDir.
const KeptWorkBundle = ".git/moat-work.bundle"

// KeptWorkBundleHost is where, relative to the repository, those steps
// have you copy it.
const KeptWorkBundleHost = "moat-work.bundle"

// keptSandboxFix says how to bring the work out of a kept sandbox by hand:
// what the agent left uncommitted committed first (hooks and signing off),
// then everything beyond known, the commit the host has, as one bundle,
// fetched into a new branch.
func keptSandboxFix(workDir, repo, known, bundle string, id hostgit.Identity) string {
	save := keptSaveCommand(workDir, known, id)
	fetch, branch := keptFetchCommand(repo, bundle)
	return "# 1. in the sandbox (how to reach it is below): commit what is left, then write the work to one file\n" +
		save + "\n" +
		"# 2. copy " + shell.Quote(workDir+"/"+KeptWorkBundle) + " from the sandbox to " + shell.Quote(bundle) + ", then:\n" +
		fetch + "\n" +
		"# 3. merge " + branch + " where you want it, then remove the sandbox"
}

// keptSaveCommand is the shell command that, in a kept sandbox, commits
// what is left and writes the work beyond known to KeptWorkBundle.
func keptSaveCommand(workDir, known string, id hostgit.Identity) string {
	q := shell.Quote
	git := "git -c core.hooksPath=/dev/null -c commit.gpgSign=false"
	if !id.Configured {
		git += " -c user.name=" + q(id.Name) + " -c user.email=" + q(id.Email)
	}
	return "cd " + q(workDir) + " && git add -A && { git diff --cached --quiet || " + git + " commit --no-verify -qm " + q(gitsync.DefaultLabel) + "; } && git bundle create " + KeptWorkBundle + " HEAD ^" + known
}

// keptFetchCommand is the host command that fetches the work in bundle
// into a new branch of repo, which it returns too.
func keptFetchCommand(repo, bundle string) (cmd, branch string) {
	q := shell.Quote
	branch = "moat/recovered-" + time.Now().Format("20060102-150405")
	return "cd " + q(repo) + " && git bundle verify " + q(bundle) + " && git -c transfer.fsckObjects=true fetch " + q(bundle) + " HEAD:refs/heads/" + branch, branch
}

func toCommits(cs []land.Commit) []Commit {
	out := make([]Commit, 0, len(cs))
	for _, c := range cs {
		out = append(out, Commit{SHA: c.SHA, Subject: c.Subject})
	}
	return out
}

// syncLimits are the run's bounds on what one sync out brings home.
func (o RunOptions) syncLimits() gitsync.Limits {
	return gitsync.Limits{FileBytes: o.MaxFileBytes, BundleBytes: o.MaxSyncBytes, Files: o.MaxSyncFiles, Objects: o.MaxSyncObjects}
}

// notMerged is the run's error when land did not merge: a conflict, or a
// merge it refused (the user's tree moved or would be overwritten). It
// is ErrMergeConflict, and says what land said ("not merging into main:
// ...", "merge conflict in ..."), once.
type notMerged struct{ err *land.NotLandedError }

func (e notMerged) Error() string {
	msg := e.err.Error()
	if strings.HasPrefix(msg, "not merging") {
		return "moat: " + msg
	}
	return "moat: " + ErrMergeConflict.Error() + ": " + msg
}

func (e notMerged) Unwrap() []error { return []error{ErrMergeConflict, e.err} }

// insideDir reports whether path is dir or below it (both resolved).
func insideDir(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}
