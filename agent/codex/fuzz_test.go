package codex

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/agenttest"
)

// FuzzParse feeds a stream (lines separated by "\n") to one Parser and
// checks, line by line, what the events may be:
//
//   - a line that is not a JSON object gives no events, and neither does a
//     JSON object with its closing brace cut off;
//   - every event is well formed: a known kind, only its kind's fields set,
//     a usage for EventUsage with no negative input count, a non-empty
//     session id, tool name and error;
//   - every string an event carries comes from the line: a session id or
//     result is one string of the line, an EventText is followed by an
//     EventResult with the same text; a Bash argument is a string of the
//     line or its script without the shell wrapper, an Edit argument is
//     the line's strings joined by ", ", an MCP tool is mcp__<string>__
//     <string>; an error is a string of the line or the parser's own words;
//   - the events depend only on the JSON value: the compacted line and the
//     line padded with white space give the same events;
//   - the parser's only state is the tool calls it reported: a fresh parser
//     gives the same events, and may only add EventToolCalls.
//
// The seed corpus in testdata/fuzz/FuzzParse holds every line of the
// recorded streams in testdata (over-long strings shortened), the short
// streams whole, and edge cases. Run it longer with
// go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 2m ./agent/codex
// (or scripts/fuzz.sh with MOAT_FUZZTIME).
func FuzzParse(f *testing.F) {
	f.Add(`{"type":"item.started","item":{"id":"c","type":"command_execution","command":"ls"}}`)
	f.Add(`{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":2}}`)
	f.Add(`{"type":"error","error":{"data":{"message":"x"}}}`)
	f.Fuzz(func(t *testing.T, stream string) {
		p := New(Config{}).NewParser()
		for _, line := range strings.Split(stream, "\n") {
			checkLine(t, p, line)
		}
	})
}

// checkLine parses line with p and checks the events against the line.
func checkLine(t *testing.T, p agent.Parser, line string) {
	t.Helper()
	events := p.Parse(line)
	trimmed := strings.TrimSpace(line)
	if !agenttest.IsObject(trimmed) {
		if len(events) > 0 {
			t.Fatalf("line %q is not a JSON object but gave events %+v", line, events)
		}
		return
	}
	if cut := New(Config{}).NewParser().Parse(trimmed[:len(trimmed)-1]); len(cut) > 0 {
		t.Fatalf("line %q without its closing brace gave events %+v", trimmed, cut)
	}
	strs := agenttest.StringsOf(t, trimmed)
	for i, e := range events {
		checkEvent(t, line, e, strs)
		if e.Kind == agent.EventText && (i+1 == len(events) || events[i+1].Kind != agent.EventResult || events[i+1].Text != e.Text) {
			t.Fatalf("line %q: text %q is not followed by a result with the same text: %+v", line, e.Text, events)
		}
	}

	fresh := New(Config{}).NewParser().Parse(line)
	if !agenttest.SameEvents(withoutToolCalls(fresh), withoutToolCalls(events)) || len(fresh) < len(events) {
		t.Fatalf("line %q: a fresh parser gives %+v, the parser that saw the lines before gives %+v", line, fresh, events)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(trimmed)); err != nil {
		t.Fatalf("line %q: Compact: %v", line, err)
	}
	for _, variant := range []string{compact.String(), " \t" + compact.String() + "\r", trimmed + "  "} {
		if got := New(Config{}).NewParser().Parse(variant); !agenttest.SameEvents(got, fresh) {
			t.Fatalf("line %q gives %+v, but the same JSON written as %q gives %+v", line, fresh, variant, got)
		}
	}
}

func checkEvent(t *testing.T, line string, e agent.Event, strs map[string]bool) {
	t.Helper()
	bad := func(why string) { t.Fatalf("line %q: event %+v: %s", line, e, why) }
	if e.Kind != agent.EventText && e.Kind != agent.EventResult && e.Kind != agent.EventError && e.Text != "" ||
		e.Kind != agent.EventToolCall && (e.Tool != "" || e.ToolArg != "") ||
		e.Kind != agent.EventSessionID && e.SessionID != "" ||
		(e.Kind == agent.EventUsage) != (e.Usage != nil) {
		bad("fields that do not belong to its kind")
	}
	switch e.Kind {
	case agent.EventText:
		if e.Text == "" || !strs[e.Text] {
			bad("the text is not a string of the line")
		}
	case agent.EventResult:
		if e.Text != "" && !strs[e.Text] {
			bad("the result is not a string of the line")
		}
	case agent.EventToolCall:
		if !toolFromLine(e, strs) {
			bad("the tool call is not made of the line's strings")
		}
	case agent.EventSessionID:
		if e.SessionID == "" || !strs[e.SessionID] {
			bad("the session id is not a string of the line")
		}
	case agent.EventError:
		if strings.TrimSpace(e.Text) == "" {
			bad("an error without a message")
		}
		if !strs[e.Text] && e.Text != "Codex reported an error" && e.Text != "Codex: the turn failed" {
			bad("the error is neither the line's words nor the parser's own")
		}
	case agent.EventUsage:
		if e.Usage.InputTokens < 0 || e.Usage.CacheCreationInputTokens != 0 {
			bad("negative input tokens, or cache writes Codex does not report")
		}
	default:
		bad("unknown kind")
	}
}

// toolFromLine reports whether tool call e is built from strs the way the
// Parser documents.
func toolFromLine(e agent.Event, strs map[string]bool) bool {
	switch {
	case e.Tool == "Bash":
		if e.ToolArg == "" || strs[e.ToolArg] {
			return true
		}
		for s := range strs {
			if unwrapShell(s) == e.ToolArg {
				return true
			}
		}
		return false
	case e.Tool == "Edit":
		return e.ToolArg == "" || agenttest.JoinOf(e.ToolArg, strs, ", ")
	case e.Tool == "WebSearch":
		return e.ToolArg == "" || strs[e.ToolArg]
	case strings.HasPrefix(e.Tool, "mcp__"):
		if e.ToolArg != "" {
			return false
		}
		rest := strings.TrimPrefix(e.Tool, "mcp__")
		// The server and the tool may hold "__" themselves: any split will do.
		for i := 0; i+2 <= len(rest); i++ {
			server, tool := rest[:i], rest[i+2:]
			if rest[i:i+2] == "__" && (server == "" || strs[server]) && (tool == "" || strs[tool]) {
				return true
			}
		}
		return false
	}
	return false
}

func withoutToolCalls(events []agent.Event) []agent.Event {
	var out []agent.Event
	for _, e := range events {
		if e.Kind != agent.EventToolCall {
			out = append(out, e)
		}
	}
	return out
}
