package gemini

import (
	"encoding/json"
	"strings"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/stream"
)

// MaxText bounds the assistant text a Parser holds while it waits for the
// end of a message: deltas past it are dropped, so memory stays bounded
// however long gemini talks without calling a tool.
const MaxText = 1 << 20

// Parser turns the lines gemini --output-format stream-json writes into
// events:
//
//   - init: EventSessionID with its session_id.
//   - message from the assistant: its content (a delta) is held, and the
//     held text goes out as one EventText at the next tool_use or result.
//     Messages from the user (gemini echoes the prompt) give nothing.
//   - tool_use: EventToolCall. gemini's own tools are named as Claude Code
//     names its tools, with the argument worth showing:
//     run_shell_command is Bash(command), read_file, write_file and
//     replace are Read, Write and Edit (file_path), glob is Glob(pattern),
//     grep_search is Grep(pattern), list_directory is LS(dir_path),
//     web_fetch is WebFetch(prompt), google_web_search is
//     WebSearch(query); other tools keep their name, with no argument.
//   - result: EventUsage from its stats (cached input tokens as cache
//     reads, the rest as input), then EventResult with the text held since
//     the last tool call when its status is success, or EventError with
//     its error's message.
//   - error (warnings and errors gemini carries on after): EventError with
//     its message.
//
// Held text is said late: it goes out with the next tool call
// or the result, which gemini prints right after its last message (a
// gemini that hangs before it would leave the text unsaid until it is
// stopped). Anything else (tool results, lines that are not JSON objects)
// gives no events. A Parser is for one invocation; it is not safe for concurrent
// use.
type Parser struct {
	text strings.Builder // assistant text since the last flush
}

// tools maps gemini's tool names to the name shown and the argument worth
// showing.
var tools = map[string][2]string{
	"run_shell_command": {"Bash", "command"},
	"read_file":         {"Read", "file_path"},
	"write_file":        {"Write", "file_path"},
	"replace":           {"Edit", "file_path"},
	"glob":              {"Glob", "pattern"},
	"grep_search":       {"Grep", "pattern"},
	"list_directory":    {"LS", "dir_path"},
	"web_fetch":         {"WebFetch", "prompt"},
	"google_web_search": {"WebSearch", "query"},
}

type event struct {
	Type       string          `json:"type"`
	SessionID  string          `json:"session_id"`
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolName   string          `json:"tool_name"`
	Parameters json.RawMessage `json:"parameters"`
	Status     string          `json:"status"`
	Stats      json.RawMessage `json:"stats"`
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
	case "init":
		if ev.SessionID != "" {
			return []agent.Event{{Kind: agent.EventSessionID, SessionID: ev.SessionID}}
		}
	case "message":
		if s, ok := stream.String(ev.Content); ok && ev.Role == "assistant" && p.text.Len()+len(s) <= MaxText {
			p.text.WriteString(s)
		}
	case "tool_use":
		if ev.ToolName == "" {
			return nil
		}
		return append(p.flush(), toolCall(ev.ToolName, ev.Parameters))
	case "result":
		held := p.text.String()
		events := p.flush()
		if u := usage(ev.Stats); u != nil {
			events = append(events, agent.Event{Kind: agent.EventUsage, Usage: u})
		}
		if ev.Status == "success" {
			return append(events, agent.Event{Kind: agent.EventResult, Text: held})
		}
		msg := stream.ErrorMessage(obj)
		if msg == "" {
			msg = "Gemini CLI reported an error"
		}
		return append(events, agent.Event{Kind: agent.EventError, Text: msg})
	case "error":
		msg := stream.ErrorMessage(obj)
		if msg == "" {
			msg = "Gemini CLI reported an error"
		}
		return []agent.Event{{Kind: agent.EventError, Text: msg}}
	}
	return nil
}

// flush returns the held text as an EventText, if any, and forgets it.
func (p *Parser) flush() []agent.Event {
	if p.text.Len() == 0 {
		return nil
	}
	e := agent.Event{Kind: agent.EventText, Text: p.text.String()}
	p.text.Reset()
	return []agent.Event{e}
}

func toolCall(name string, params json.RawMessage) agent.Event {
	t, ok := tools[name]
	if !ok {
		return agent.Event{Kind: agent.EventToolCall, Tool: name}
	}
	var fields map[string]json.RawMessage
	var arg string
	if json.Unmarshal(params, &fields) == nil {
		arg, _ = stream.String(fields[t[1]])
	}
	return agent.Event{Kind: agent.EventToolCall, Tool: t[0], ToolArg: arg}
}

// usage decodes a result's stats; nil when there are none or they count
// nothing (a request that failed before any token).
func usage(raw json.RawMessage) *agent.Usage {
	var s struct {
		InputTokens  int  `json:"input_tokens"`
		OutputTokens int  `json:"output_tokens"`
		Cached       int  `json:"cached"`
		Input        *int `json:"input"`
	}
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	input := s.InputTokens - s.Cached
	if s.Input != nil {
		input = *s.Input
	}
	u := &agent.Usage{InputTokens: max(input, 0), CacheReadInputTokens: max(s.Cached, 0), OutputTokens: max(s.OutputTokens, 0)}
	if *u == (agent.Usage{}) {
		return nil
	}
	return u
}
