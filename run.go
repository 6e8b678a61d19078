package moat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

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
	// ErrMergeConflict: the run's commits were not merged: they conflict
	// with the target branch, or moat refused the merge (it would
	// overwrite uncommitted changes or untracked files, the branch was
	// switched, the commits change moat's own files, the agent rewrote
	// history). The run's branch is kept; RunResult.Kept says how to
	// finish.
	ErrMergeConflict = errors.New("not merged")
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
		if m := res.MergeCommit; m != nil {
			m.Subject = r.redact(m.Subject)
		}
		for i, k := range res.Kept {
			k.Reason, k.Fix = r.redact(k.Reason), r.redact(k.Fix)
			res.Kept[i] = k
			r.logf("kept %s %s: %s; to finish: %s", k.What, k.Path, k.Reason, k.Fix)
		}
	}
	if err != nil {
		err = r.secrets.redactError(err)
		r.logf("run failed: %v", err)
	}
	return res, err
}

type runner struct {
	opts    RunOptions
	res     *RunResult
	mu      sync.Mutex // serialises events
	iter    int
	prompt  string
	secrets *redactor // nil when there are none (see secretsOf)
	out     output    // the run's id and log (events.go)
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
	for name, v := range map[string]int64{"MaxFileBytes": o.MaxFileBytes, "MaxSyncBytes": o.MaxSyncBytes, "MaxSyncFiles": o.MaxSyncFiles, "MaxSyncObjects": o.MaxSyncObjects} {
		if v < 0 {
			return nil, fmt.Errorf("moat: %s is %d; a limit must be positive (0 means its default)", name, v)
		}
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
	if o.ExitGrace <= 0 {
		o.ExitGrace = DefaultExitGrace
	}
	if o.Repo == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("moat: %w", err)
		}
		o.Repo = wd
	}
	r := &runner{opts: o, res: &RunResult{}, secrets: newRedactor(secretsOf(o.Env, o.SecretEnv, o.Agent.CredentialEnv()))}
	r.opts.Env, r.opts.SecretEnv = sandboxEnv(o.Env, o.SecretEnv), nil
	o.Footprint.setRedact(r.redact)
	return r, nil
}

// cleanupCtx outlives the caller's ctx: cleanup must run after a cancel.
func cleanupCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
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
// next call); a closed sandbox, a finished ctx, an error the sandbox says
// is permanent (sandbox.IsPermanent: a refused SSH host key or login,
// say), or one marked permanent here end it at once. Each retry is announced as a warning.
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
		if err == nil || final || attempt == syncAttempts || ctx.Err() != nil || errors.Is(err, sandbox.ErrClosed) || sandbox.IsPermanent(err) {
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
