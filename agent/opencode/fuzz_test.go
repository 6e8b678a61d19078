package opencode

import (
	"strings"
	"testing"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/agenttest"
)

// FuzzParse feeds a stream (lines separated by "\n") to one Parser and
// checks every line's events with agenttest.Rules: nothing from lines that
// are not JSON objects or are cut short, well-formed events made of the
// stream's strings, the same events for the same JSON however it is
// written. A tool call is one of opencode's tools under its shown name
// with a string of the line, or another tool under its own name with no
// argument; an error without a message is named by the error's name.
//
// The seed corpus in testdata/fuzz/FuzzParse holds every line of the
// recorded streams in testdata, the streams whole, and edge cases. Run it
// longer with go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 2m ./agent/opencode
func FuzzParse(f *testing.F) {
	f.Add(`{"type":"tool_use","sessionID":"s","part":{"type":"tool","tool":"bash","state":{"status":"completed","input":{"command":"ls"}}}}`)
	rules := agenttest.Rules{
		New: func() agent.Parser { return New(Config{}).NewParser() },
		Tool: func(e agent.Event, strs map[string]bool) bool {
			for name, t := range tools {
				if e.Tool == t[0] && strs[name] {
					return e.ToolArg == "" || strs[e.ToolArg]
				}
			}
			return strs[e.Tool] && e.ToolArg == ""
		},
	}
	f.Fuzz(func(t *testing.T, stream string) {
		// The parser's own words name the error: allow each of the
		// stream's strings as a name.
		r := rules
		r.Own = []string{"OpenCode reported an error"}
		for _, l := range splitLines(stream) {
			if agenttest.IsObject(l) {
				for s := range agenttest.StringsOf(t, l) {
					r.Own = append(r.Own, "OpenCode reported an error ("+s+")")
				}
			}
		}
		r.Stream(t, stream)
	})
}

func splitLines(stream string) []string {
	var lines []string
	for _, l := range strings.Split(stream, "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	return lines
}
