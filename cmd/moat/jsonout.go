package main

import (
	"errors"
	"time"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent"
)

// The `moat run --json` stream: one JSON object per line, each with "type"
// and "time" (RFC 3339, UTC, nanoseconds). Documented in docs/json.md; add
// fields freely, never rename or remove one.

// jsonEvent is every event before the result.
type jsonEvent struct {
	Type      string `json:"type"` // status, iteration_start, iteration_end, text, tool_call, stderr, warning
	Time      string `json:"time"`
	Iteration int    `json:"iteration,omitempty"` // 1-based; absent outside the agent loop
	Text      string `json:"text,omitempty"`
	Tool      string `json:"tool,omitempty"`     // tool_call: e.g. "Bash"
	ToolArg   string `json:"tool_arg,omitempty"` // tool_call: e.g. "npm test"
}

func jsonTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func jsonEventOf(e moat.Event) jsonEvent {
	return jsonEvent{Type: string(e.Kind), Time: jsonTime(e.Time), Iteration: e.Iteration, Text: e.Text, Tool: e.Tool, ToolArg: e.ToolArg}
}

// jsonResult is the last line of the stream.
type jsonResult struct {
	Type     string `json:"type"` // "result"
	Time     string `json:"time"`
	OK       bool   `json:"ok"`
	ExitCode int    `json:"exit_code"` // what moat exits with
	// Error is the failure as moat prints it; ErrorKind classifies it:
	// idle_timeout, agent_failed, sync_out, merge_conflict, interrupted,
	// other.
	Error            string          `json:"error,omitempty"`
	ErrorKind        string          `json:"error_kind,omitempty"`
	DurationMS       int64           `json:"duration_ms"`
	Branch           string          `json:"branch,omitempty"`
	Commits          []jsonCommit    `json:"commits"`
	MergeCommit      *jsonCommit     `json:"merge_commit,omitempty"` // moat's own, when the branch had moved
	CompletionSignal string          `json:"completion_signal,omitempty"`
	Iterations       []jsonIteration `json:"iterations"`
	Usage            *agent.Usage    `json:"usage,omitempty"` // summed over iterations, when the agent reports it
	Phases           []jsonPhase     `json:"phases"`
	Kept             []jsonKept      `json:"kept"`
	LogFile          string          `json:"log_file,omitempty"`
}

type jsonCommit struct {
	SHA     string `json:"sha"`
	Subject string `json:"subject"`
}

type jsonIteration struct {
	ExitCode   int          `json:"exit_code"`
	DurationMS int64        `json:"duration_ms"`
	SessionID  string       `json:"session_id,omitempty"`
	Usage      *agent.Usage `json:"usage,omitempty"`
}

type jsonPhase struct {
	Name       string `json:"name"`
	DurationMS int64  `json:"duration_ms"`
}

type jsonKept struct {
	What   string `json:"what"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Fix    string `json:"fix,omitempty"`
}

func jsonResultOf(res *moat.RunResult, took time.Duration, runErr error) jsonResult {
	r := jsonResult{
		Type: "result", Time: jsonTime(time.Now()), OK: runErr == nil,
		DurationMS: took.Milliseconds(),
		Commits:    []jsonCommit{}, Iterations: []jsonIteration{}, Phases: []jsonPhase{}, Kept: []jsonKept{},
	}
	if runErr != nil {
		r.Error = runErr.Error()
		r.ErrorKind = errorKind(runErr)
		switch r.ErrorKind {
		case "interrupted":
			r.ExitCode = exitInterrupted
		case "usage":
			r.ExitCode = exitUsage
		default:
			r.ExitCode = exitFailure
		}
	}
	if res == nil {
		return r
	}
	r.Branch, r.CompletionSignal, r.LogFile = res.Branch, res.CompletionSignal, res.LogFile
	for _, c := range res.Commits {
		r.Commits = append(r.Commits, jsonCommit{c.SHA, c.Subject})
	}
	if m := res.MergeCommit; m != nil {
		r.MergeCommit = &jsonCommit{m.SHA, m.Subject}
	}
	for _, it := range res.Iterations {
		r.Iterations = append(r.Iterations, jsonIteration{it.ExitCode, it.Duration.Milliseconds(), it.SessionID, it.Usage})
	}
	r.Usage = totalUsage(res)
	for _, ph := range res.Phases {
		r.Phases = append(r.Phases, jsonPhase{ph.Name, ph.Duration.Milliseconds()})
	}
	for _, k := range res.Kept {
		r.Kept = append(r.Kept, jsonKept{k.What, k.Path, k.Reason, k.Fix})
	}
	return r
}

func errorKind(err error) string {
	var ue *usageError
	switch {
	case errors.Is(err, moat.ErrIdleTimeout):
		return "idle_timeout"
	case errors.Is(err, moat.ErrAgentFailed):
		return "agent_failed"
	case errors.Is(err, moat.ErrSyncOut):
		return "sync_out"
	case errors.Is(err, moat.ErrMergeConflict):
		return "merge_conflict"
	case errors.Is(err, errInterrupted):
		return "interrupted"
	case errors.As(err, &ue):
		return "usage"
	}
	return "other"
}
