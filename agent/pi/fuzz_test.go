package pi

import (
	"testing"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/agenttest"
)

// FuzzParse feeds a stream (lines separated by "\n") to one Parser and
// checks every line's events with agenttest.Rules: nothing from lines that
// are not JSON objects or are cut short, well-formed events made of the
// stream's strings, the same events for the same JSON however it is
// written. A tool call is one of pi's tools under its shown name with a
// string of the line, or another tool under its own name with no argument.
//
// The seed corpus in testdata/fuzz/FuzzParse holds every line of the
// recorded streams in testdata, the streams whole, and edge cases. Run it
// longer with go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 2m ./agent/pi
func FuzzParse(f *testing.F) {
	f.Add(`{"type":"tool_execution_start","toolName":"bash","args":{"command":"ls"}}`)
	f.Add(`{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"a"}],"usage":{"input":1},"stopReason":"error"}}`)
	rules := agenttest.Rules{
		New: func() agent.Parser { return New(Config{}).NewParser() },
		Own: []string{"pi gave up retrying the model request", "pi reported an error",
			"pi: the model request failed", "pi: the model request was aborted"},
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
