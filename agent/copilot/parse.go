package copilot

import (
	"encoding/json"
	"strings"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/stream"
)

// Parser turns the lines copilot --output-format json writes into events:
//
//   - assistant.message with content: EventText and EventResult, both with
//     its content (the last message is the answer). The deltas that come
//     before it give nothing, so that each message is reported once.
//   - tool.execution_start: EventToolCall. copilot's own tools are named as
//     Claude Code names its tools, with the argument worth showing: bash is
//     Bash(command), view, create and edit are Read, Write and Edit
//     (path), grep is Grep(pattern), glob is Glob(pattern), web_fetch is
//     WebFetch(url), task is Task(description); other tools keep their
//     name, with no argument.
//   - session.error, error: EventError with the message.
//   - result: EventSessionID with its sessionId.
//
// copilot's JSON output carries no token counts, so there is no
// EventUsage. Anything else (the user's message, turn, model-call and
// background-task lines, tool results, lines that are not JSON objects)
// gives no events. A Parser holds no state; it is for one invocation.
type Parser struct{}

// tools maps copilot's tool names to the name shown and the argument worth
// showing.
var tools = map[string][2]string{
	"bash":      {"Bash", "command"},
	"view":      {"Read", "path"},
	"create":    {"Write", "path"},
	"edit":      {"Edit", "path"},
	"grep":      {"Grep", "pattern"},
	"glob":      {"Glob", "pattern"},
	"web_fetch": {"WebFetch", "url"},
	"task":      {"Task", "description"},
}

type event struct {
	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data"`
	SessionID string          `json:"sessionId"`
}

type data struct {
	Content   json.RawMessage `json:"content"`
	ToolName  string          `json:"toolName"`
	Arguments json.RawMessage `json:"arguments"`
	Message   json.RawMessage `json:"message"`
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
	// data's fields are read where they have the expected types.
	var d data
	_ = json.Unmarshal(ev.Data, &d)
	switch ev.Type {
	case "assistant.message":
		if s, ok := stream.String(d.Content); ok && s != "" {
			return []agent.Event{{Kind: agent.EventText, Text: s}, {Kind: agent.EventResult, Text: s}}
		}
	case "tool.execution_start":
		if d.ToolName != "" {
			return []agent.Event{toolCall(d.ToolName, d.Arguments)}
		}
	case "session.error":
		msg, _ := stream.String(d.Message)
		if strings.TrimSpace(msg) == "" {
			msg = "GitHub Copilot CLI reported an error"
		}
		return []agent.Event{{Kind: agent.EventError, Text: msg}}
	case "error", "agent_error":
		msg := stream.ErrorMessage(obj)
		if msg == "" {
			msg = stream.ErrorMessage(ev.Data)
		}
		if msg == "" {
			msg = "GitHub Copilot CLI reported an error"
		}
		return []agent.Event{{Kind: agent.EventError, Text: msg}}
	case "result":
		if ev.SessionID != "" {
			return []agent.Event{{Kind: agent.EventSessionID, SessionID: ev.SessionID}}
		}
	}
	return nil
}

func toolCall(name string, args json.RawMessage) agent.Event {
	t, ok := tools[name]
	if !ok {
		return agent.Event{Kind: agent.EventToolCall, Tool: name}
	}
	var fields map[string]json.RawMessage
	var arg string
	if json.Unmarshal(args, &fields) == nil {
		arg, _ = stream.String(fields[t[1]])
	}
	return agent.Event{Kind: agent.EventToolCall, Tool: t[0], ToolArg: arg}
}
