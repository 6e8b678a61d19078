// Package gitsync moves a repository into a sandbox and brings the agent's
// commits back as they were, with git on both sides and only the
// sandbox.Handle contract (Exec, CopyIn, CopyOut, WorkDir) in between.
//
// Sync in: PackBase writes a git pack of the run's base, with its index,
// straight from the user's repository (no host worktree); SyncIn streams
// both into the sandbox over one Exec's standard input and makes the
// sandbox repository at WorkDir from them, on the run's branch, HEAD
// verified.
//
// Sync out: in the sandbox, work the agent left uncommitted becomes one
// labelled commit, and the commits the host lacks go into a bundle, which
// comes home under a size cap and enters the host repository through
// git index-pack --strict (git's fsck checks on every object) and one ref
// under refs/moat/runs/<run-id>/. Commits keep their SHAs, authors, dates,
// signatures and merges. Nothing else in the host repository changes:
// merging is the caller's business.
package gitsync

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

// Options configure SyncIn and SyncOut.
type Options struct {
	// Timeout bounds each step: one git command on either side, one copy.
	// 0 means 2 minutes.
	Timeout time.Duration
	// Logf, when set, receives progress and warnings.
	Logf func(format string, args ...any)
}

// DefaultTimeout is the per-step timeout when Options.Timeout is 0.
const DefaultTimeout = 2 * time.Minute

// SyncBaseRef is the sandbox ref naming the last sandbox commit the host has.
const SyncBaseRef = "refs/moat/sync-base"

// syncIDKey is the sandbox repository's config key holding a random id of
// one SyncIn, so host-side state is tied to the sandbox it came from.
const syncIDKey = syncIDSection + "." + syncIDName

const syncIDSection, syncIDName = "moat", "syncid"

// sandboxEnv is set for every command moat runs in the sandbox.
var sandboxEnv = map[string]string{
	"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0",
	"GIT_EDITOR": ":", "GIT_PAGER": "cat", "PAGER": "cat",
}

// sgit prefixes sandbox git commands: it overrides configuration the agent
// could have set that would change the output moat parses or applies.
const sgit = "git -c core.quotePath=false -c diff.noprefix=false -c diff.mnemonicPrefix=false " +
	"-c log.showSignature=false -c color.ui=false -c core.hooksPath=/dev/null"

type syncer struct {
	h         sandbox.Handle
	timeout   time.Duration
	logf      func(format string, args ...any)
	keepFiles []string // .keep files of packs imported, removed once refs point at them
	// quarantine is the object directory the bundle's objects wait in
	// until they are admitted into objects, the repository's.
	quarantine, objects string
}

func newSyncer(h sandbox.Handle, o Options) *syncer {
	s := &syncer{h: h, timeout: o.Timeout, logf: o.Logf}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	return s
}

func (s *syncer) log(format string, args ...any) {
	if s.logf != nil {
		s.logf(format, args...)
	}
}

// exec runs cmd in the sandbox's WorkDir. Only a failure to run is an error.
func (s *syncer) exec(ctx context.Context, cmd string, stdin io.Reader) (sandbox.ExecResult, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res, err := s.h.Exec(ctx, cmd, sandbox.ExecOptions{Env: sandboxEnv, Stdin: stdin})
	if err != nil {
		return res, fmt.Errorf("gitsync: sandbox command %q: %w", short(cmd), err)
	}
	return res, nil
}

// run is exec where a non-zero exit is an error too.
func (s *syncer) run(ctx context.Context, cmd string, stdin io.Reader) (string, error) {
	res, err := s.exec(ctx, cmd, stdin)
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		out := strings.TrimSpace(res.Stderr)
		if out == "" {
			out = strings.TrimSpace(res.Stdout)
		}
		return res.Stdout, fmt.Errorf("gitsync: sandbox command %q failed: exit status %d: %s", short(cmd), res.ExitCode, hostgit.Tail(out, 2000))
	}
	return res.Stdout, nil
}

func (s *syncer) copyIn(ctx context.Context, hostPath, sandboxPath string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.h.CopyIn(ctx, hostPath, sandboxPath); err != nil {
		return fmt.Errorf("gitsync: copying %s into the sandbox: %w", hostPath, err)
	}
	return nil
}

func (s *syncer) copyOut(ctx context.Context, sandboxPath, hostPath string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.h.CopyOut(ctx, sandboxPath, hostPath); err != nil {
		return fmt.Errorf("gitsync: copying %s out of the sandbox: %w", sandboxPath, err)
	}
	return nil
}

// mktemp makes a private temporary directory in the sandbox.
func (s *syncer) mktemp(ctx context.Context) (string, error) {
	out, err := s.run(ctx, `mktemp -d "${TMPDIR:-/tmp}/moat-sync-XXXXXX"`, nil)
	if err != nil {
		return "", err
	}
	dir := strings.TrimSpace(out)
	if !strings.HasPrefix(dir, "/") {
		return "", fmt.Errorf("gitsync: mktemp in the sandbox printed %q, not a directory", dir)
	}
	return dir, nil
}

// rmTemp removes a sandbox temporary directory, best effort, also when ctx
// has ended.
func (s *syncer) rmTemp(ctx context.Context, dir string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := s.h.Exec(ctx, "rm -rf "+shell.Quote(dir), sandbox.ExecOptions{}); err != nil {
		s.log("could not remove %s in the sandbox: %v", dir, err)
	}
}

func (s *syncer) git(ctx context.Context, dir string, args ...string) (string, error) {
	return hostgit.Run(ctx, s.timeout, dir, args...)
}

func (s *syncer) line(ctx context.Context, dir string, args ...string) (string, error) {
	return hostgit.Line(ctx, s.timeout, dir, args...)
}

// short abbreviates a command for an error message.
func short(cmd string) string {
	// The -c options of every sandbox git say nothing to a reader.
	cmd = strings.ReplaceAll(cmd, sgit, "git")
	cmd = strings.ReplaceAll(cmd, "\n", "; ")
	if len(cmd) > 120 {
		return cmd[:120] + "..."
	}
	return cmd
}
