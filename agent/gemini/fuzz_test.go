package gemini

import (
	"testing"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/agenttest"
)

// FuzzParse feeds a stream (lines separated by "\n") to one Parser and
// checks every line's events with agenttest.Rules: nothing from lines that
// are not JSON objects or are cut short, well-formed events made of the
// stream's strings (held deltas joined), the same events for the same
// JSON however it is written, and no text longer than MaxText. A tool
// call is one of gemini's tools under its shown name with a string of the
// line, or another tool under its own name with no argument.
//
// The seed corpus in testdata/fuzz/FuzzParse holds every line of the
// recorded streams in testdata, the streams whole, and edge cases. Run it
// longer with go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 2m ./agent/gemini
func FuzzParse(f *testing.F) {
	f.Add(`{"type":"message","role":"assistant","content":"a"}` + "\n" + `{"type":"result","status":"success","stats":{"input_tokens":1}}`)
	rules := agenttest.Rules{
		New:     func() agent.Parser { return New(Config{}).NewParser() },
		Own:     []string{"Gemini CLI reported an error"},
		MaxText: MaxText,
		Tool: func(e agent.Event, strs map[string]bool) bool {
			for name, t := range tools {
				if e.Tool == t[0] && strs[name] {
					return e.ToolArg == "" || strs[e.ToolArg]
				}
			}
			return strs[e.Tool] && e.ToolArg == ""
		},
	}
	f.Fuzz(func(t *testing.T, stream string) { rules.Stream(t, stream) })
}
