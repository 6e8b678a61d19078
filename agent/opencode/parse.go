package opencode

import (
	"encoding/json"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/stream"
)

// Parser turns the lines opencode run --format json writes into events:
//
//   - the first line naming a session (sessionID), and any naming another:
//     EventSessionID.
//   - text (a finished text part): EventText and EventResult, both with
//     its text (the last text is the answer).
//   - tool_use of a tool part that completed or failed: EventToolCall.
//     opencode's own tools are named as Claude Code names its tools, with
//     the argument worth showing: bash is Bash(command), read, write and
//     edit are Read, Write and Edit (filePath), glob is Glob(pattern), grep
//     is Grep(pattern), list is LS(path), webfetch is WebFetch(url),
//     websearch is WebSearch(query), task is Task(description); other
//     tools keep their name, with no argument.
//   - step_finish: EventUsage from its tokens (input, output, cache read
//     and write), unless all are zero.
//   - error: EventError with its message.
//
// Anything else (step starts, reasoning, pending or running tools, lines
// that are not JSON objects) gives no events. A Parser is for one
// invocation; it is not safe for concurrent use.
type Parser struct {
	session string // the last session id reported
}

// tools maps opencode's tool names to the name shown and the argument
// worth showing.
var tools = map[string][2]string{
	"bash":      {"Bash", "command"},
	"read":      {"Read", "filePath"},
	"write":     {"Write", "filePath"},
	"edit":      {"Edit", "filePath"},
	"glob":      {"Glob", "pattern"},
	"grep":      {"Grep", "pattern"},
	"list":      {"LS", "path"},
	"webfetch":  {"WebFetch", "url"},
	"websearch": {"WebSearch", "query"},
	"task":      {"Task", "description"},
}

type event struct {
	Type      string `json:"type"`
	SessionID string `json:"sessionID"`
	Part      struct {
		Type  string `json:"type"`
		Text  string `json:"text"`
		Tool  string `json:"tool"`
		State struct {
			Status string          `json:"status"`
			Input  json.RawMessage `json:"input"`
		} `json:"state"`
		Tokens json.RawMessage `json:"tokens"`
	} `json:"part"`
}

// Parse returns the events of one stdout line.
func (p *Parser) Parse(line string) []agent.Event {
	obj, ok := stream.Object(line)
	if !ok {
		return nil
	}
	var ev event
	if json.Unmarshal(obj, &ev) != nil {
		// A part of an unexpected shape still names its session.
		ev = event{}
		var head struct {
			Type      string `json:"type"`
			SessionID string `json:"sessionID"`
		}
		if json.Unmarshal(obj, &head) != nil {
			return nil
		}
		ev.Type, ev.SessionID = head.Type, head.SessionID
	}
	var events []agent.Event
	if ev.SessionID != "" && ev.SessionID != p.session {
		p.session = ev.SessionID
		events = append(events, agent.Event{Kind: agent.EventSessionID, SessionID: ev.SessionID})
	}
	switch ev.Type {
	case "text":
		if ev.Part.Type == "text" && ev.Part.Text != "" {
			events = append(events,
				agent.Event{Kind: agent.EventText, Text: ev.Part.Text},
				agent.Event{Kind: agent.EventResult, Text: ev.Part.Text})
		}
	case "tool_use":
		if ev.Part.Type == "tool" && ev.Part.Tool != "" && (ev.Part.State.Status == "completed" || ev.Part.State.Status == "error") {
			events = append(events, toolCall(ev.Part.Tool, ev.Part.State.Input))
		}
	case "step_finish":
		if u := usage(ev.Part.Tokens); u != nil {
			events = append(events, agent.Event{Kind: agent.EventUsage, Usage: u})
		}
	case "error":
		msg := stream.ErrorMessage(obj)
		if msg == "" {
			msg = errorName(obj)
		}
		events = append(events, agent.Event{Kind: agent.EventError, Text: msg})
	}
	return events
}

// errorName words an error event that carries no message, by its error's
// name when it has one.
func errorName(obj []byte) string {
	var ev struct {
		Error struct {
			Name string `json:"name"`
		} `json:"error"`
	}
	if json.Unmarshal(obj, &ev) == nil && ev.Error.Name != "" {
		return "OpenCode reported an error (" + ev.Error.Name + ")"
	}
	return "OpenCode reported an error"
}

func toolCall(name string, input json.RawMessage) agent.Event {
	t, ok := tools[name]
	if !ok {
		return agent.Event{Kind: agent.EventToolCall, Tool: name}
	}
	var fields map[string]json.RawMessage
	var arg string
	if json.Unmarshal(input, &fields) == nil {
		arg, _ = stream.String(fields[t[1]])
	}
	return agent.Event{Kind: agent.EventToolCall, Tool: t[0], ToolArg: arg}
}

// usage decodes a step's tokens; nil when there are none or they count
// nothing.
func usage(raw json.RawMessage) *agent.Usage {
	var t struct {
		Input  int `json:"input"`
		Output int `json:"output"`
		Cache  struct {
			Read  int `json:"read"`
			Write int `json:"write"`
		} `json:"cache"`
	}
	if json.Unmarshal(raw, &t) != nil {
		return nil
	}
	u := &agent.Usage{
		InputTokens:              max(t.Input, 0),
		CacheCreationInputTokens: max(t.Cache.Write, 0),
		CacheReadInputTokens:     max(t.Cache.Read, 0),
		OutputTokens:             max(t.Output, 0),
	}
	if *u == (agent.Usage{}) {
		return nil
	}
	return u
}
