package agenttest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/moatdev/moat/agent"
)

// Rules are what a fuzz target checks of a parser's events, line by line;
// Stream applies them to a whole stream. The events of a line are judged
// against the strings of every line the parser has seen, so a parser may
// join text across lines (deltas) but never invent it.
type Rules struct {
	// New returns a fresh parser.
	New func() agent.Parser
	// Own lists the texts the parser words itself (errors with no message
	// of their own); any other text must be made of the stream's strings.
	Own []string
	// Tool reports whether a tool call is made of strs the way the parser
	// documents (names mapped, arguments picked or shortened).
	Tool func(e agent.Event, strs map[string]bool) bool
	// MaxText bounds the length of one text, result or error; 0 means
	// the length of the stream seen so far (nothing grows past its input).
	MaxText int
}

// Stream feeds stream's lines (split on "\n") to one parser and checks:
//
//   - a line that is not a JSON object gives no events, and neither does a
//     JSON object with its closing brace cut off (given to a fresh parser);
//   - every event is well formed: a known kind, only its kind's fields set,
//     a usage with no negative count for EventUsage, a non-empty session
//     id and tool name;
//   - texts, results and errors are the stream's strings, joined (or the
//     parser's own words), session ids are strings of the stream, tool
//     calls pass Tool;
//   - the events of a line, for a fresh parser, depend only on its JSON
//     value: the compacted line and the line padded with white space give
//     the same events.
func (r Rules) Stream(t *testing.T, stream string) {
	t.Helper()
	p := r.New()
	strs := map[string]bool{}
	seen := 0
	for _, line := range strings.Split(stream, "\n") {
		seen += len(line) + 1
		trimmed := strings.TrimSpace(line)
		if IsObject(trimmed) {
			for s := range StringsOf(t, trimmed) {
				strs[s] = true
			}
		}
		events := p.Parse(line)
		if !IsObject(trimmed) {
			if len(events) > 0 {
				t.Fatalf("line %q is not a JSON object but gave events %+v", line, events)
			}
			continue
		}
		if cut := r.New().Parse(trimmed[:len(trimmed)-1]); len(cut) > 0 {
			t.Fatalf("line %q without its closing brace gave events %+v", trimmed, cut)
		}
		limit := r.MaxText
		if limit == 0 {
			limit = seen
		}
		for _, e := range events {
			r.event(t, line, e, strs, limit)
		}
		r.variants(t, line, trimmed)
	}
}

func (r Rules) variants(t *testing.T, line, trimmed string) {
	t.Helper()
	fresh := r.New().Parse(line)
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(trimmed)); err != nil {
		t.Fatalf("line %q: Compact: %v", line, err)
	}
	for _, variant := range []string{compact.String(), " \t" + compact.String() + "\r", trimmed + "  "} {
		if got := r.New().Parse(variant); !SameEvents(got, fresh) {
			t.Fatalf("line %q gives %+v, but the same JSON written as %q gives %+v", line, fresh, variant, got)
		}
	}
}

func (r Rules) event(t *testing.T, line string, e agent.Event, strs map[string]bool, limit int) {
	t.Helper()
	bad := func(why string) { t.Fatalf("line %q: event %+v: %s", line, e, why) }
	if e.Kind != agent.EventText && e.Kind != agent.EventResult && e.Kind != agent.EventError && e.Text != "" ||
		e.Kind != agent.EventToolCall && (e.Tool != "" || e.ToolArg != "") ||
		e.Kind != agent.EventSessionID && e.SessionID != "" ||
		(e.Kind == agent.EventUsage) != (e.Usage != nil) {
		bad("fields that do not belong to its kind")
	}
	own := func(s string) bool {
		for _, o := range r.Own {
			if s == o {
				return true
			}
		}
		return false
	}
	if len(e.Text) > limit && !own(e.Text) {
		bad("a text longer than the stream that made it, or than MaxText")
	}
	switch e.Kind {
	case agent.EventText:
		if e.Text == "" || !strs[e.Text] && !JoinOf(e.Text, strs, "") {
			bad("the text is not made of the stream's strings")
		}
	case agent.EventResult:
		if e.Text != "" && !strs[e.Text] && !JoinOf(e.Text, strs, "") {
			bad("the result is not made of the stream's strings")
		}
	case agent.EventError:
		if strings.TrimSpace(e.Text) == "" {
			bad("an error without a message")
		}
		if !strs[e.Text] && !own(e.Text) {
			bad("the error is neither the stream's words nor the parser's own")
		}
	case agent.EventToolCall:
		if e.Tool == "" {
			bad("a tool call without a tool")
		}
		if !r.Tool(e, strs) {
			bad("the tool call is not made of the stream's strings")
		}
	case agent.EventSessionID:
		if e.SessionID == "" || !strs[e.SessionID] {
			bad("the session id is not a string of the stream")
		}
	case agent.EventUsage:
		u := e.Usage
		if u.InputTokens < 0 || u.OutputTokens < 0 || u.CacheReadInputTokens < 0 || u.CacheCreationInputTokens < 0 {
			bad("negative token counts")
		}
	default:
		bad("unknown kind")
	}
}
