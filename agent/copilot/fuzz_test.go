package copilot

import (
	"testing"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/agenttest"
)

// FuzzParse feeds a stream (lines separated by "\n") to one Parser and
// checks every line's events with agenttest.Rules: nothing from lines that
// are not JSON objects or are cut short, well-formed events made of the
// stream's strings, the same events for the same JSON however it is
// written. A tool call is one of copilot's tools under its shown name with
// a string of the line, or another tool under its own name with no
// argument.
//
// The seed corpus in testdata/fuzz/FuzzParse holds every line of the
// recorded streams in testdata, the streams whole, and edge cases. Run it
// longer with go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 2m ./agent/copilot
func FuzzParse(f *testing.F) {
	f.Add(`{"type":"tool.execution_start","data":{"toolName":"bash","arguments":{"command":"ls"}}}`)
	rules := agenttest.Rules{
		New: func() agent.Parser { return New(Config{}).NewParser() },
		Own: []string{"GitHub Copilot CLI reported an error"},
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
