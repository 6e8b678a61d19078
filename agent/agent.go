// Package agent defines how moat drives a coding agent CLI (Claude Code,
// Codex, pi, OpenCode, Copilot, Cursor, Gemini, any command) inside a
// sandbox: an Agent turns a prompt into a command line plus stdin, makes
// sure its CLI is installed, and parses the CLI's output lines into
// Events.
//
// Each agent package also describes itself to programs that let a person
// choose it (the moat CLI) as a Kind: its name, what it needs, how it is
// made from the person's settings. A Registry lists the kinds a program
// offers; docs/adding-an-agent.md says how to add one.
package agent

import (
	"context"

	"github.com/moatdev/moat/sandbox"
)

// Agent is one kind of coding agent.
type Agent interface {
	// Name is a short identifier: "claude", "codex", "command".
	Name() string

	// Ensure checks that the agent's CLI is present in the sandbox and
	// installs it when it is not, reporting progress as human-readable
	// lines. It is called once per sandbox, before the first Invocation;
	// calling it again is cheap (it finds what the first call installed),
	// and concurrent calls for one sandbox install once. The error says what
	// was missing and how to fix it.
	Ensure(ctx context.Context, h sandbox.Handle, progress func(line string)) error

	// Invocation returns the command that runs the agent on prompt. The
	// prompt travels on stdin, never on the command line.
	Invocation(prompt string) (Invocation, error)

	// CredentialEnv names the environment variables that carry the agent's
	// credentials (e.g. ANTHROPIC_API_KEY). Callers pass them into the
	// sandbox environment; they never appear on a command line.
	CredentialEnv() []string

	// NewParser returns a parser for the output of one invocation.
	NewParser() Parser
}

// Invocation is a command to run in the sandbox's work directory.
type Invocation struct {
	Cmd   string            // run with sh -c
	Stdin string            // the prompt, usually
	Env   map[string]string // extra, non-secret settings
}

// Parser turns stdout lines of one invocation into events. Unknown or
// malformed lines produce no events (they are never fatal).
type Parser interface {
	Parse(line string) []Event
}

// EventKind says what an Event carries.
type EventKind string

const (
	// EventText carries assistant text in Text: one message (Claude, Codex)
	// or one output line without its line ending (command).
	EventText EventKind = "text"
	// EventToolCall names a tool the agent called in Tool ("Bash", "Read",
	// ...), with the one argument worth showing in ToolArg (the command,
	// the file path; "" when no argument is worth showing).
	EventToolCall EventKind = "tool_call"
	// EventResult carries the final answer of the invocation in Text. An
	// agent may report several; the last one wins. The command agent
	// reports none: its answer is its output.
	EventResult EventKind = "result"
	// EventSessionID carries the agent's session (thread) id in SessionID.
	EventSessionID EventKind = "session_id"
	// EventUsage carries token counts in Usage; the last one wins. Claude
	// Code reports the usage of each model request as it goes (input plus
	// cache tokens is the context size at that point) and the invocation's
	// totals at the end; Codex reports the totals when the turn completes.
	EventUsage EventKind = "usage"
	// EventError carries, in Text, an error the agent reported. The agent
	// may carry on after it (Codex reports retries this way); the exit status
	// of the invocation says whether it failed.
	EventError EventKind = "error"
)

// Event is one thing an agent reported.
type Event struct {
	Kind      EventKind
	Text      string
	Tool      string // e.g. "Bash"
	ToolArg   string // the one argument worth showing, e.g. the command
	SessionID string
	Usage     *Usage
}

// Usage counts tokens.
type Usage struct {
	InputTokens              int `json:"input_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	OutputTokens             int `json:"output_tokens"`
}
