package cursor

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/agenttest"
	"github.com/moatdev/moat/agent/internal/stream"
)

// FuzzParse feeds a stream (lines separated by "\n") to one Parser and
// checks every line's events with agenttest.Rules: nothing from lines that
// are not JSON objects or are cut short, well-formed events made of the
// stream's strings, the same events for the same JSON however it is
// written. A tool call is a known tool call key under its shown name with
// a string of the line, another key ending in ToolCall under the rest of
// it, capitalised, or a key or function name of the line; a Bash argument
// may come from inside a function call's arguments.
//
// The seed corpus in testdata/fuzz/FuzzParse holds every line of the
// streams in testdata, the streams whole, and edge cases. Run it longer
// with go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 2m ./agent/cursor
func FuzzParse(f *testing.F) {
	f.Add(`{"type":"tool_call","subtype":"started","tool_call":{"shellToolCall":{"args":{"command":"ls"}}}}`)
	rules := agenttest.Rules{
		New: func() agent.Parser { return New(Config{}).NewParser() },
		Own: []string{"Cursor reported an error"},
		Tool: func(e agent.Event, strs map[string]bool) bool {
			for key, t := range tools {
				if e.Tool == t[0] && strs[key] && (e.ToolArg == "" || strs[e.ToolArg]) {
					return true
				}
			}
			if e.Tool == "Bash" && e.ToolArg != "" {
				// From a function call's arguments, a JSON text of the line.
				for s := range strs {
					var args map[string]json.RawMessage
					if json.Unmarshal([]byte(s), &args) == nil {
						if cmd, _ := stream.String(args["command"]); cmd == e.ToolArg {
							return true
						}
					}
				}
				return false
			}
			if e.ToolArg != "" {
				return false
			}
			if strs[e.Tool] {
				return true
			}
			for s := range strs {
				if name, ok := strings.CutSuffix(s, "ToolCall"); ok && name != "" && capitalize(name) == e.Tool {
					return true
				}
			}
			return false
		},
	}
	f.Fuzz(func(t *testing.T, stream string) { rules.Stream(t, stream) })
}
