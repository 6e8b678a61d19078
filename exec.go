package moat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/moatdev/moat/internal/gitsync"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

// ExecOptions configure Exec.
type ExecOptions struct {
	// Repo is the host repository, or a directory in it; default the
	// working directory. The command starts in the same directory relative
	// to the repository's top: `moat exec` from repo/sub runs in sub.
	Repo string
	// Sandbox makes the one sandbox.
	Sandbox sandbox.Provider
	// Command is a shell command line, run in the synced repository.
	Command string
	// Env is set in the sandbox for every command. The values of keys that
	// look secret (SecretKey) are hidden in Exec's errors like SecretEnv's.
	Env map[string]string
	// SecretEnv is set in the sandbox like Env (it wins for a key in both);
	// its values never appear in Exec's errors (the command's own output is
	// passed through untouched).
	SecretEnv map[string]string
	// Stdin, when set, is the command's standard input.
	Stdin io.Reader
	// Stdout and Stderr receive the command's output byte for byte as it
	// runs; nil discards it.
	Stdout, Stderr io.Writer
	// CommittedOnly syncs HEAD alone. By default the uncommitted changes
	// and the untracked files git does not ignore are synced too, so the
	// command sees what is in your editor.
	CommittedOnly bool
	// Keep leaves the sandbox running; ExecResult.Sandbox is then the open
	// handle, and closing it is the caller's job.
	Keep bool
	// OnStatus, when set, receives what Exec is doing ("creating the
	// sandbox", ...).
	OnStatus func(string)
	// Footprint, when set, is kept up to date with what Exec has made and
	// not yet removed, as in a run (RunOptions.Footprint).
	Footprint *Footprint
	// OnWarning, when set, receives what the command will lack (the
	// submodules arrive empty, say).
	OnWarning func(string)
}

// ExecResult is what Exec did.
type ExecResult struct {
	// ExitCode is the command's exit status; 128+N when killed by signal N.
	ExitCode int
	// Sandbox is the kept sandbox with ExecOptions.Keep, else nil.
	Sandbox sandbox.Handle
	// Phases is where the time went: create, sync in, command, close.
	Phases []Phase
}

// Exec runs one command in a fresh sandbox holding the repository: "run
// my tests in a clean VM". The sandbox is closed afterwards unless Keep is
// set. An error means the command did not run to its end (the sandbox
// failed, sync-in failed, ctx ended); the command's own failure is only its
// ExitCode.
func Exec(ctx context.Context, o ExecOptions) (*ExecResult, error) {
	secrets := newRedactor(secretsOf(o.Env, o.SecretEnv, nil))
	o.Env, o.SecretEnv = sandboxEnv(o.Env, o.SecretEnv), nil
	res, err := execute(ctx, o)
	// As in Run: secrets never appear in an error (the command's own
	// output is passed through untouched).
	return res, secrets.redactError(err)
}

func execute(ctx context.Context, o ExecOptions) (res *ExecResult, err error) {
	if o.Sandbox == nil {
		return nil, errors.New("moat: ExecOptions.Sandbox is required (e.g. exedev.New, local.New)")
	}
	if o.Command == "" {
		return nil, errors.New("moat: ExecOptions.Command is empty")
	}
	if o.Repo == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("moat: %w", err)
		}
		o.Repo = wd
	}
	status := func(s string) {
		if o.OnStatus != nil {
			o.OnStatus(s)
		}
	}
	res = &ExecResult{}
	// The same phases as a run: a plan, a sandbox created while HEAD is
	// bundled, synced in, and closed at the end.
	r := &runner{opts: RunOptions{Sandbox: o.Sandbox, Env: o.Env, Footprint: o.Footprint, OnEvent: func(e Event) {
		switch {
		case e.Kind == EventStatus && o.OnStatus != nil:
			o.OnStatus(e.Text)
		case e.Kind == EventWarning && o.OnWarning != nil:
			o.OnWarning(e.Text)
		}
	}}, res: &RunResult{}}
	defer func() {
		if res != nil {
			res.Phases = r.res.Phases
		}
	}()
	p, err := newPlan(ctx, o.Repo, r.runID())
	if err != nil {
		return nil, err
	}
	p.fp = o.Footprint
	p.fp.setRunID(p.runID)
	p.fp.put(footTemp, Kept{What: "directory", Path: p.tmp, Reason: "moat's temporary files", Fix: "rm -rf -- " + shell.Quote(p.tmp)})
	defer p.cleanup()
	repo := p.repo
	p.branch, _ = hostgit.Line(ctx, 0, repo.TopLevel, "symbolic-ref", "-q", "--short", "HEAD")
	if err := p.recordBase(ctx); err != nil {
		return nil, err
	}
	sb, err := r.provision(ctx, p)
	r.dropRunRefs(ctx, p)
	if err != nil {
		return res, err
	}
	h := sb.h
	defer func() {
		if o.Keep {
			res.Sandbox = h
			return
		}
		if cerr := r.closeSandbox(ctx, sb); cerr != nil && err == nil {
			err = fmt.Errorf("moat: close sandbox: %w", cerr)
		}
	}()
	if !o.CommittedOnly {
		status("syncing your uncommitted changes into the sandbox")
		end := r.phase("sync in")
		_, err := gitsync.SyncChanges(ctx, repo.TopLevel, h, gitsync.Options{})
		end()
		if err != nil {
			return res, fmt.Errorf("moat: %w", err)
		}
	}

	start := time.Now()
	dir := ""
	if abs, err := filepath.Abs(o.Repo); err == nil {
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real // git reports the top level with links resolved
		}
		if rel, err := filepath.Rel(repo.TopLevel, abs); err == nil && rel != "." && filepath.IsLocal(rel) {
			dir = filepath.ToSlash(rel)
		}
	}
	if dir != "" {
		// git carries no empty directories; the user may stand in one.
		if _, err := h.Exec(ctx, "mkdir -p -- "+shell.Quote(dir), sandbox.ExecOptions{}); err != nil {
			return res, fmt.Errorf("moat: making %s in the sandbox: %w", dir, err)
		}
	}
	er, err := h.Exec(ctx, o.Command, sandbox.ExecOptions{Dir: dir, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr})
	r.res.Phases = append(r.res.Phases, Phase{Name: "command", Duration: time.Since(start)})
	if err != nil {
		return res, fmt.Errorf("moat: running %q in the sandbox: %w", o.Command, err)
	}
	res.ExitCode = er.ExitCode
	return res, nil
}
