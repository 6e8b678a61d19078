// Package moat runs AI coding agents inside isolated sandboxes and brings
// their git commits back to your repository.
//
//	res, err := moat.Run(ctx, moat.RunOptions{
//		Sandbox: exedev.New(exedev.Config{}),
//		Agent:   claude.New(claude.Config{Model: "claude-opus-4-8"}),
//		Prompt:  "Fix the failing test, commit, then print <promise>COMPLETE</promise>.",
//	})
//
// A run creates one sandbox while it packs the run's base straight from
// your repository (no host worktree), makes the sandbox's repository from
// that pack,
// runs the agent for up to MaxIterations iterations, brings its commits
// home after each as a bundle fetched with object checking (same SHAs,
// authors, dates, signatures and merges), merges them into your
// checked-out branch, and closes the sandbox.
package moat

import (
	"time"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/sandbox"
)

// DefaultCompletionSignal is what an agent prints when it is done.
const DefaultCompletionSignal = "<promise>COMPLETE</promise>"

// DefaultExitGrace is RunOptions.ExitGrace when unset: enough for the
// output still in flight when the agent exits, over a slow link too.
const DefaultExitGrace = 5 * time.Second

// RunOptions configure a Run.
type RunOptions struct {
	// Repo is the host repository; default the working directory.
	Repo string
	// Sandbox makes the run's one sandbox.
	Sandbox sandbox.Provider
	// Agent is the coding agent to run.
	Agent agent.Agent

	// Prompt or PromptFile (exactly one) is the prompt. {{KEY}} is replaced
	// from PromptArgs; {{SOURCE_BRANCH}} (the run's branch) and
	// {{TARGET_BRANCH}} (the branch merged into) are built in. A {{KEY}}
	// with no value is an error.
	Prompt, PromptFile string
	PromptArgs         map[string]string

	// MaxIterations is the most agent invocations; default 1. The loop stops
	// early when the agent prints a completion signal.
	MaxIterations int
	// CompletionSignals end the loop when found in the agent's output;
	// default DefaultCompletionSignal.
	CompletionSignals []string
	// IdleTimeout fails an iteration when the agent prints nothing for this
	// long; every line resets it. Default 10 minutes.
	IdleTimeout time.Duration
	// CompletionTimeout is the grace after a completion signal for the agent
	// to exit by itself; then it is stopped and the iteration counts as
	// complete. Default 60 seconds.
	CompletionTimeout time.Duration
	// ExitGrace is how long, once the agent's own process has exited,
	// its output may take to end; then what is left of its processes in
	// the sandbox (a child it put in the background, which may hold its
	// output open for ever) is killed with a warning naming them, and the
	// iteration goes on with the exit status the agent gave. Default 5
	// seconds.
	ExitGrace time.Duration

	// Branch selects the branch strategy: "" merges the run's commits into
	// the branch checked out in Repo (merge-to-head; in the sandbox the run
	// works on moat/<run-id>); a name puts them on that branch, created at
	// Base or advanced from its own tip.
	Branch string
	// Base is the branch or commit the run starts from; default the
	// branch checked out in Repo. A named Branch that exists already
	// continues from its own tip instead.
	Base string
	// MaxFileBytes, MaxSyncBytes, MaxSyncFiles and MaxSyncObjects bound
	// what one sync out may bring home: the size of each new or changed
	// file (default 100 MiB); their total size, and the size of the bundle
	// of new commits (default 1 GiB); how many files (default 100,000);
	// and the git objects in the bundle (default 2,000,000). Over one, the
	// run fails with an error naming the file and the limit, nothing of
	// the work comes home, and the sandbox is kept with it where it can
	// outlive the run.
	MaxFileBytes, MaxSyncBytes, MaxSyncFiles, MaxSyncObjects int64

	// Env is set in the sandbox for every command. Its values are shown
	// as given wherever they appear (events, the log, the result, errors),
	// but for the keys that look secret (SecretKey: *_KEY, *_TOKEN,
	// *_SECRET, *PASSWORD*, *CREDENTIAL*) and the agent's credential
	// variables (Agent.CredentialEnv), whose values are redacted like
	// SecretEnv's.
	Env map[string]string
	// SecretEnv is set in the sandbox like Env (it wins for a key in
	// both), and its values are secrets: wherever they would appear in
	// events, the log, the result or an error, they are replaced by
	// "[redacted]", and so is each line of a multi-line value. Values
	// shorter than MinSecret bytes are left, as too likely to be ordinary
	// words.
	// Credentials go here, or in Env under a key SecretKey knows.
	SecretEnv map[string]string
	// Hooks run at fixed points of the run.
	Hooks Hooks
	// CopyToWorktree lists paths, relative to the repository root, copied
	// into the sandbox next to the synced repository (e.g. .env,
	// node_modules): things git does not carry.
	CopyToWorktree []string

	// OnEvent, when set, receives every event of the run as it happens,
	// from one goroutine at a time.
	OnEvent func(Event)
	// LogFile receives a plain-text log of the run: moat's steps with
	// their times, and what the agent said (text, tool calls, stderr), each
	// line of it with a short prefix ("| ", "> ", "! ") and a time line
	// whenever the second changes. "" means <repo>/.moat/logs/<run
	// id>.log, a new file for every run (the run id is its start time in
	// UTC and random hex: 20261207-103348-a1b2c3); "-" means no log; any
	// other path is used as given, and what it held is replaced.
	LogFile string
	// LogLimit caps the size of the log in bytes: a log that would grow
	// past it keeps the start and the end of the run, with a line saying
	// how much was dropped between them, and the file never grows past it
	// even when moat is killed. 0 means 64 MiB; a negative value, no cap.
	LogLimit int64
	// LogKeep is how many logs .moat/logs keeps: opening a run's log
	// there removes the oldest beyond it (logs written to in the last
	// hour are spared). 0 means 50; a negative value, never remove. Only
	// the default location is pruned.
	LogKeep int

	// Footprint, when set, is kept up to date with what the run has made
	// and not yet removed (temporary files, refs, a worktree, the
	// sandbox, a merge under way), so that a process that must quit at
	// once can say what it leaves behind and how to recover or remove it.
	Footprint *Footprint
}

// Hooks are shell commands run at fixed points; a failing hook fails the run.
type Hooks struct {
	// OnWorktreeReady run on the host, in the run's worktree, before the
	// sandbox is created.
	OnWorktreeReady []string
	// OnSandboxReady run in the sandbox, in the repository, after it is
	// synced in and before the agent starts (e.g. "npm ci").
	OnSandboxReady []string
}

// EventKind says what an Event carries.
type EventKind string

const (
	EventStatus         EventKind = "status"          // Text: what the run is doing
	EventIterationStart EventKind = "iteration_start" // Iteration
	EventIterationEnd   EventKind = "iteration_end"   // Iteration
	EventText           EventKind = "text"            // Text: agent text
	EventToolCall       EventKind = "tool_call"       // Tool, ToolArg
	EventRaw            EventKind = "raw"             // Text: one raw stdout line of the agent
	EventStderr         EventKind = "stderr"          // Text: one stderr line of the agent
	EventWarning        EventKind = "warning"         // Text
)

// Event is one thing that happened during a run.
type Event struct {
	Kind      EventKind `json:"kind"`
	Time      time.Time `json:"time"`
	Iteration int       `json:"iteration,omitempty"` // 1-based; 0 outside the loop
	Text      string    `json:"text,omitempty"`
	Tool      string    `json:"tool,omitempty"`
	ToolArg   string    `json:"tool_arg,omitempty"`
}

// RunResult is what a run did.
type RunResult struct {
	// RunID names the run: its log is .moat/logs/<RunID>.log, its refs
	// refs/moat/runs/<RunID>/, its kept branch moat/<RunID>.
	RunID      string
	Iterations []IterationResult
	// CompletionSignal is the signal the agent printed, "" if none.
	CompletionSignal string
	// Commits are the agent's commits that landed on Branch, oldest first,
	// with the same SHAs as in the sandbox.
	Commits []Commit
	// MergeCommit is the merge commit moat made when Branch had moved
	// while the agent worked; nil for a fast-forward.
	MergeCommit *Commit
	// Branch is where the commits are: the target branch for merge-to-head,
	// else the named branch.
	Branch string
	// LogFile is the run's log, "" when disabled.
	LogFile string
	// Kept lists what was kept for recovery instead of being cleaned up.
	Kept []Kept
	// Phases is where the time went, in the order the phases first ran:
	// prepare, create and pack (at the same time), sync in, setup, agent,
	// sync out, merge, close.
	Phases []Phase
	// Sandbox is set when the agent's work could not be brought out of the
	// sandbox (Kept has a "sandbox" entry saying how to fetch it): rather
	// than destroy the only copy, Run leaves the sandbox running. The caller
	// owns it and must Close it once the work is safe, or have
	// SaveKeptWork copy the work out.
	Sandbox sandbox.Handle

	keptSave string // in Sandbox, the command that writes the work to KeptWorkBundle
	keptRepo string // the host repository
}

// Phase is the time spent in one phase of a run.
type Phase struct {
	Name     string
	Duration time.Duration
}

// IterationResult is one agent invocation.
type IterationResult struct {
	SessionID string
	Usage     *agent.Usage
	ExitCode  int
	Duration  time.Duration
}

// Commit is a commit that landed.
type Commit struct {
	SHA, Subject string
}

// Kept is something a run kept for recovery, with why and what to do.
type Kept struct {
	What   string // "worktree", "patches", "branch"
	Path   string // a directory, or a branch name
	Reason string
	Fix    string // commands to finish by hand, if any
}
