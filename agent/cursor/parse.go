package cursor

import (
	"encoding/json"
	"strings"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/stream"
)

// Parser turns the lines cursor-agent --output-format stream-json writes
// into events (the format follows Claude Code's stream-json, with tool
// calls of its own):
//
//   - system/init: EventSessionID with its session_id.
//   - assistant: EventText with its text blocks joined.
//   - tool_call/started: EventToolCall, named by the one key of tool_call:
//     shellToolCall is Bash(command), readToolCall, writeToolCall,
//     editToolCall and deleteToolCall are Read, Write, Edit and Delete
//     (path), lsToolCall is LS(path), grepToolCall is Grep(pattern),
//     globToolCall is Glob(globPattern), webFetchToolCall is
//     WebFetch(url); another fooToolCall is Foo, with no argument; a
//     function call is its name, or Bash(command) when its arguments hold
//     a command.
//   - result: EventSessionID when it names a session not reported yet,
//     EventUsage from its usage when it has one, then EventResult with
//     its result text, or EventError when it reports an error (is_error,
//     or a subtype starting with "error").
//   - error: EventError with its message.
//
// Anything else (the user's prompt, thinking, completed tool calls, lines
// that are not JSON objects) gives no events. A Parser is for one
// invocation; it is not safe for concurrent use.
type Parser struct {
	session string // the last session id reported
}

// tools maps cursor's tool call keys to the name shown and the argument
// worth showing.
var tools = map[string][2]string{
	"shellToolCall":    {"Bash", "command"},
	"readToolCall":     {"Read", "path"},
	"writeToolCall":    {"Write", "path"},
	"editToolCall":     {"Edit", "path"},
	"deleteToolCall":   {"Delete", "path"},
	"lsToolCall":       {"LS", "path"},
	"grepToolCall":     {"Grep", "pattern"},
	"globToolCall":     {"Glob", "globPattern"},
	"webFetchToolCall": {"WebFetch", "url"},
}

type event struct {
	Type      string          `json:"type"`
	Subtype   string          `json:"subtype"`
	SessionID string          `json:"session_id"`
	Message   json.RawMessage `json:"message"`
	ToolCall  json.RawMessage `json:"tool_call"`
	Result    json.RawMessage `json:"result"`
	IsError   bool            `json:"is_error"`
	Usage     json.RawMessage `json:"usage"`
}

// Parse returns the events of one stdout line.
func (p *Parser) Parse(line string) []agent.Event {
	obj, ok := stream.Object(line)
	if !ok {
		return nil
	}
	var ev event
	if json.Unmarshal(obj, &ev) != nil {
		return nil
	}
	switch ev.Type {
	case "system":
		if ev.Subtype == "init" && ev.SessionID != "" {
			p.session = ev.SessionID
			return []agent.Event{{Kind: agent.EventSessionID, SessionID: ev.SessionID}}
		}
	case "assistant":
		var m struct {
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		}
		if json.Unmarshal(ev.Message, &m) != nil {
			return nil
		}
		var b strings.Builder
		for _, c := range m.Content {
			if c.Type == "text" {
				b.WriteString(c.Text)
			}
		}
		if b.Len() > 0 {
			return []agent.Event{{Kind: agent.EventText, Text: b.String()}}
		}
	case "tool_call":
		if ev.Subtype == "started" {
			if e, ok := toolCall(ev.ToolCall); ok {
				return []agent.Event{e}
			}
		}
	case "result":
		return p.result(ev)
	case "error":
		msg := stream.ErrorMessage(obj)
		if msg == "" {
			msg = "Cursor reported an error"
		}
		return []agent.Event{{Kind: agent.EventError, Text: msg}}
	}
	return nil
}

func (p *Parser) result(ev event) []agent.Event {
	var events []agent.Event
	if ev.SessionID != "" && ev.SessionID != p.session {
		p.session = ev.SessionID
		events = append(events, agent.Event{Kind: agent.EventSessionID, SessionID: ev.SessionID})
	}
	if u := usage(ev.Usage); u != nil {
		events = append(events, agent.Event{Kind: agent.EventUsage, Usage: u})
	}
	text, isString := stream.String(ev.Result)
	switch {
	case ev.IsError || strings.HasPrefix(ev.Subtype, "error"):
		if strings.TrimSpace(text) == "" {
			text = "Cursor reported an error"
		}
		events = append(events, agent.Event{Kind: agent.EventError, Text: text})
	case isString:
		events = append(events, agent.Event{Kind: agent.EventResult, Text: text})
	}
	return events
}

// toolCall names the tool call in raw, an object with one key.
func toolCall(raw json.RawMessage) (agent.Event, bool) {
	var calls map[string]json.RawMessage
	if json.Unmarshal(raw, &calls) != nil || len(calls) != 1 {
		return agent.Event{}, false
	}
	for key, body := range calls {
		if key == "" {
			return agent.Event{}, false
		}
		if key == "function" {
			return functionCall(body)
		}
		var call struct {
			Args map[string]json.RawMessage `json:"args"`
		}
		_ = json.Unmarshal(body, &call)
		if t, ok := tools[key]; ok {
			arg, _ := stream.String(call.Args[t[1]])
			return agent.Event{Kind: agent.EventToolCall, Tool: t[0], ToolArg: arg}, true
		}
		name, ok := strings.CutSuffix(key, "ToolCall")
		if !ok || name == "" {
			return agent.Event{Kind: agent.EventToolCall, Tool: key}, true
		}
		return agent.Event{Kind: agent.EventToolCall, Tool: capitalize(name)}, true
	}
	return agent.Event{}, false
}

// functionCall names a function tool call: {"name": ..., "arguments": a
// JSON text}.
func functionCall(body json.RawMessage) (agent.Event, bool) {
	var f struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	}
	if json.Unmarshal(body, &f) != nil || f.Name == "" {
		return agent.Event{}, false
	}
	var args map[string]json.RawMessage
	if json.Unmarshal([]byte(f.Arguments), &args) == nil {
		if cmd, ok := stream.String(args["command"]); ok && cmd != "" {
			return agent.Event{Kind: agent.EventToolCall, Tool: "Bash", ToolArg: cmd}, true
		}
	}
	return agent.Event{Kind: agent.EventToolCall, Tool: f.Name}, true
}

// usage decodes a result's usage, in Cursor's camelCase or Claude Code's
// snake_case; nil when there is none or it counts nothing.
func usage(raw json.RawMessage) *agent.Usage {
	var u struct {
		InputTokens      int `json:"inputTokens"`
		OutputTokens     int `json:"outputTokens"`
		CacheReadTokens  int `json:"cacheReadTokens"`
		CacheWriteTokens int `json:"cacheWriteTokens"`
		agent.Usage
	}
	if json.Unmarshal(raw, &u) != nil {
		return nil
	}
	out := &agent.Usage{
		InputTokens:              max(u.InputTokens, u.Usage.InputTokens, 0),
		CacheCreationInputTokens: max(u.CacheWriteTokens, u.Usage.CacheCreationInputTokens, 0),
		CacheReadInputTokens:     max(u.CacheReadTokens, u.Usage.CacheReadInputTokens, 0),
		OutputTokens:             max(u.OutputTokens, u.Usage.OutputTokens, 0),
	}
	if *out == (agent.Usage{}) {
		return nil
	}
	return out
}

// capitalize returns name with its first letter upper case, when that is
// an ASCII letter.
func capitalize(name string) string {
	if c := name[0]; c >= 'a' && c <= 'z' {
		return string(c-'a'+'A') + name[1:]
	}
	return name
}
