package claude

import (
	"encoding/json"
	"strings"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/stream"
)

// Parser turns the lines claude --output-format stream-json writes into
// events:
//
//   - system/init: EventSessionID.
//   - assistant: for message.content, EventText for each run of consecutive
//     text blocks (joined), and EventToolCall for each tool_use block, in
//     order; then EventUsage from message.usage. Usage of a sub-agent's
//     messages (parent_tool_use_id set) is left out, so that the last usage
//     reported is the main conversation's.
//   - result: EventSessionID when it names a session not reported yet,
//     EventUsage from its usage (the invocation's totals), then EventResult
//     with its result text, or EventError when it reports an error
//     (is_error, or a subtype starting with "error").
//
// Anything else (user lines with tool results, other system lines, lines
// that are not JSON objects) gives no events. A Parser is for one
// invocation; it is not safe for concurrent use.
type Parser struct {
	session string // the last session id reported
}

// toolArgs names, per tool, the input field worth showing. Tools not listed
// are reported with an empty argument.
var toolArgs = map[string]string{
	"Bash":         "command",
	"Read":         "file_path",
	"Write":        "file_path",
	"Edit":         "file_path",
	"MultiEdit":    "file_path",
	"NotebookEdit": "notebook_path",
	"Grep":         "pattern",
	"Glob":         "pattern",
	"WebSearch":    "query",
	"WebFetch":     "url",
	"Agent":        "description",
	"Task":         "description",
}

type envelope struct {
	Type            string          `json:"type"`
	Subtype         string          `json:"subtype"`
	SessionID       string          `json:"session_id"`
	ParentToolUseID json.RawMessage `json:"parent_tool_use_id"`
	Message         json.RawMessage `json:"message"`
	// result lines
	Result  json.RawMessage `json:"result"`
	IsError bool            `json:"is_error"`
	Usage   json.RawMessage `json:"usage"`
	Errors  json.RawMessage `json:"errors"`
}

type message struct {
	Content []block         `json:"content"`
	Usage   json.RawMessage `json:"usage"`
}

type block struct {
	Type  string          `json:"type"`
	Text  string          `json:"text"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

// Parse returns the events of one stdout line.
func (p *Parser) Parse(line string) []agent.Event {
	obj, ok := stream.Object(line)
	if !ok {
		return nil
	}
	var env envelope
	if json.Unmarshal(obj, &env) != nil {
		return nil
	}
	switch env.Type {
	case "system":
		if env.Subtype == "init" && env.SessionID != "" {
			p.session = env.SessionID
			return []agent.Event{{Kind: agent.EventSessionID, SessionID: env.SessionID}}
		}
	case "assistant":
		return p.assistant(env)
	case "result":
		return p.result(env)
	}
	return nil
}

func (p *Parser) assistant(env envelope) []agent.Event {
	var msg message
	if json.Unmarshal(env.Message, &msg) != nil {
		return nil
	}
	var events []agent.Event
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			events = append(events, agent.Event{Kind: agent.EventText, Text: text.String()})
			text.Reset()
		}
	}
	for _, b := range msg.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			flush()
			if b.Name != "" {
				events = append(events, agent.Event{Kind: agent.EventToolCall, Tool: b.Name, ToolArg: toolArg(b.Name, b.Input)})
			}
		}
	}
	flush()
	if isNull(env.ParentToolUseID) {
		if u := usage(msg.Usage); u != nil {
			events = append(events, agent.Event{Kind: agent.EventUsage, Usage: u})
		}
	}
	return events
}

func (p *Parser) result(env envelope) []agent.Event {
	var events []agent.Event
	if env.SessionID != "" && env.SessionID != p.session {
		p.session = env.SessionID
		events = append(events, agent.Event{Kind: agent.EventSessionID, SessionID: env.SessionID})
	}
	if u := usage(env.Usage); u != nil {
		events = append(events, agent.Event{Kind: agent.EventUsage, Usage: u})
	}
	text, isString := stream.String(env.Result)
	switch {
	case env.IsError || strings.HasPrefix(env.Subtype, "error"):
		events = append(events, agent.Event{Kind: agent.EventError, Text: resultError(env, text)})
	case isString:
		events = append(events, agent.Event{Kind: agent.EventResult, Text: text})
	}
	return events
}

// resultError words the error a result line reports.
func resultError(env envelope, text string) string {
	if strings.TrimSpace(text) != "" {
		return text
	}
	var errs []string
	if json.Unmarshal(env.Errors, &errs) == nil {
		var kept []string
		for _, e := range errs {
			if strings.TrimSpace(e) != "" {
				kept = append(kept, e)
			}
		}
		if len(kept) > 0 {
			return strings.Join(kept, "; ")
		}
	}
	switch env.Subtype {
	case "error_max_turns":
		return "Claude Code stopped: it reached the maximum number of turns (error_max_turns)"
	case "error_max_budget_usd":
		return "Claude Code stopped: it reached its spending limit (error_max_budget_usd)"
	case "error_during_execution":
		return "Claude Code failed during execution (error_during_execution)"
	case "", "success":
		return "Claude Code reported an error"
	}
	return "Claude Code reported an error (" + env.Subtype + ")"
}

// toolArg returns the input field worth showing for the tool, when it is a
// string.
func toolArg(tool string, input json.RawMessage) string {
	field, ok := toolArgs[tool]
	if !ok {
		return ""
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(input, &fields) != nil {
		return ""
	}
	s, _ := stream.String(fields[field])
	return s
}

// usage decodes a usage object; nil when raw is not one.
func usage(raw json.RawMessage) *agent.Usage {
	if isNull(raw) {
		return nil
	}
	var u agent.Usage
	if json.Unmarshal(raw, &u) != nil {
		return nil
	}
	return &u
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}
