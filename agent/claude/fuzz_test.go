package claude

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
//     a usage for EventUsage, a non-empty session id, tool name and error;
//   - every string an event carries comes from the line: a session id, tool
//     name, tool argument and result is one string of the line, a text is a
//     run of the line's strings joined, an error is the line's strings
//     joined by "; " or one of the parser's own messages;
//   - the events depend only on the JSON value: the compacted line and the
//     line padded with white space give the same events;
//   - the parser's only state is the session id it reported: a fresh parser
//     gives the same events, and may only add an EventSessionID.
//
// The seed corpus in testdata/fuzz/FuzzParse holds every line of the
// recorded streams in testdata (over-long strings shortened), the short
// streams whole, and edge cases. Run it longer with
// go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 2m ./agent/claude
// (or scripts/fuzz.sh with MOAT_FUZZTIME).
func FuzzParse(f *testing.F) {
	f.Add(`{"type":"assistant","message":{"content":[{"type":"text","text":"a"},{"type":"tool_use","name":"Bash","input":{"command":"ls"}}],"usage":{"input_tokens":1}}}`)
	f.Add(`{"type":"result","subtype":"error_max_turns","is_error":true,"errors":["x"],"usage":{}}`)
	f.Add(`{"type":"system","subtype":"init","session_id":"s"}`)
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
	for _, e := range events {
		checkEvent(t, line, e, strs)
	}

	fresh := New(Config{}).NewParser().Parse(line)
	if !agenttest.SameEvents(withoutSessionIDs(fresh), withoutSessionIDs(events)) || countSessionIDs(fresh) < countSessionIDs(events) {
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
		if e.Text == "" || !agenttest.JoinOf(e.Text, strs, "") {
			bad("the text is not a run of the line's strings")
		}
	case agent.EventResult:
		if !strs[e.Text] {
			bad("the result is not a string of the line")
		}
	case agent.EventToolCall:
		if e.Tool == "" || !strs[e.Tool] || e.ToolArg != "" && !strs[e.ToolArg] {
			bad("the tool or its argument is not a string of the line")
		}
	case agent.EventSessionID:
		if e.SessionID == "" || !strs[e.SessionID] {
			bad("the session id is not a string of the line")
		}
	case agent.EventError:
		if strings.TrimSpace(e.Text) == "" {
			bad("an error without a message")
		}
		if !strings.HasPrefix(e.Text, "Claude Code ") && !agenttest.JoinOf(e.Text, strs, "; ") {
			bad("the error is neither the line's words nor the parser's own")
		}
	case agent.EventUsage:
	default:
		bad("unknown kind")
	}
}

func withoutSessionIDs(events []agent.Event) []agent.Event {
	var out []agent.Event
	for _, e := range events {
		if e.Kind != agent.EventSessionID {
			out = append(out, e)
		}
	}
	return out
}

func countSessionIDs(events []agent.Event) int {
	return len(events) - len(withoutSessionIDs(events))
}
