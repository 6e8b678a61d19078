package pi

import (
	"encoding/json"
	"strings"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/stream"
)

// Parser turns the lines pi --mode json writes into events:
//
//   - session (the header line): EventSessionID with its id.
//   - message_end of an assistant message: EventText with its text blocks
//     joined, EventUsage from its usage (input, cacheRead, cacheWrite,
//     output; left out when all are zero, as on a failed request), and
//     EventError with its errorMessage when it stopped on an error or
//     was aborted.
//   - tool_execution_start: EventToolCall. pi's own tools are named as
//     Claude Code names its tools, with the argument worth showing: bash
//     is Bash(command), read, edit and write are Read, Edit and Write
//     (path), grep is Grep(pattern), find is Find(pattern), ls is
//     LS(path); other tools keep their name, with no argument.
//   - agent_end: EventResult with the text of the last assistant message,
//     unless that message failed.
//   - auto_retry_end that gave up: EventError with its final error; error
//     and agent_error lines: EventError with their message.
//
// Anything else (the user's message, updates and deltas, turn and
// compaction lines, lines that are not JSON objects) gives no events. A
// Parser holds no state; it is for one invocation.
type Parser struct{}

// tools maps pi's tool names to the name shown and the argument worth
// showing.
var tools = map[string][2]string{
	"bash":  {"Bash", "command"},
	"read":  {"Read", "path"},
	"edit":  {"Edit", "path"},
	"write": {"Write", "path"},
	"grep":  {"Grep", "pattern"},
	"find":  {"Find", "pattern"},
	"ls":    {"LS", "path"},
}

type event struct {
	Type       string          `json:"type"`
	ID         string          `json:"id"`
	Message    json.RawMessage `json:"message"`
	Messages   json.RawMessage `json:"messages"`
	ToolName   string          `json:"toolName"`
	Args       json.RawMessage `json:"args"`
	Success    *bool           `json:"success"`
	FinalError string          `json:"finalError"`
}

type message struct {
	Role    string `json:"role"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	Usage        json.RawMessage `json:"usage"`
	StopReason   string          `json:"stopReason"`
	ErrorMessage string          `json:"errorMessage"`
}

func (m message) text() string {
	var b strings.Builder
	for _, c := range m.Content {
		if c.Type == "text" {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

func (m message) failed() bool { return m.StopReason == "error" || m.StopReason == "aborted" }

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
	case "session":
		if ev.ID != "" {
			return []agent.Event{{Kind: agent.EventSessionID, SessionID: ev.ID}}
		}
	case "message_end":
		var m message
		if json.Unmarshal(ev.Message, &m) != nil || m.Role != "assistant" {
			return nil
		}
		return messageEvents(m)
	case "tool_execution_start":
		if ev.ToolName == "" {
			return nil
		}
		return []agent.Event{toolCall(ev.ToolName, ev.Args)}
	case "agent_end":
		var msgs []message
		if json.Unmarshal(ev.Messages, &msgs) != nil {
			return nil
		}
		for i := len(msgs) - 1; i >= 0; i-- {
			if msgs[i].Role != "assistant" {
				continue
			}
			if msgs[i].failed() {
				return nil
			}
			return []agent.Event{{Kind: agent.EventResult, Text: msgs[i].text()}}
		}
	case "auto_retry_end":
		if ev.Success != nil && !*ev.Success {
			msg := ev.FinalError
			if strings.TrimSpace(msg) == "" {
				msg = "pi gave up retrying the model request"
			}
			return []agent.Event{{Kind: agent.EventError, Text: msg}}
		}
	case "error", "agent_error":
		msg := stream.ErrorMessage(obj)
		if msg == "" {
			msg = "pi reported an error"
		}
		return []agent.Event{{Kind: agent.EventError, Text: msg}}
	}
	return nil
}

func messageEvents(m message) []agent.Event {
	var events []agent.Event
	if t := m.text(); t != "" {
		events = append(events, agent.Event{Kind: agent.EventText, Text: t})
	}
	var u struct {
		Input      int `json:"input"`
		Output     int `json:"output"`
		CacheRead  int `json:"cacheRead"`
		CacheWrite int `json:"cacheWrite"`
	}
	// A usage pi could not count (all zero, as on a failed request) would
	// hide the last real one.
	if json.Unmarshal(m.Usage, &u) == nil && (u.Input > 0 || u.Output > 0 || u.CacheRead > 0 || u.CacheWrite > 0) {
		events = append(events, agent.Event{Kind: agent.EventUsage, Usage: &agent.Usage{
			InputTokens:              max(u.Input, 0),
			CacheCreationInputTokens: max(u.CacheWrite, 0),
			CacheReadInputTokens:     max(u.CacheRead, 0),
			OutputTokens:             max(u.Output, 0),
		}})
	}
	if m.failed() {
		msg := m.ErrorMessage
		if strings.TrimSpace(msg) == "" {
			msg = "pi: the model request " + map[string]string{"error": "failed", "aborted": "was aborted"}[m.StopReason]
		}
		events = append(events, agent.Event{Kind: agent.EventError, Text: msg})
	}
	return events
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
