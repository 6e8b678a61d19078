package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/moatdev/moat"
)

// encodingJSON is the stream line of e as encoding/json writes it.
func encodingJSON(t testing.TB, e moat.Event) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(jsonEventOf(e)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var testTimes timeCache

func checkJSONEvent(t testing.TB, e moat.Event) {
	if got, want := string(appendJSONEvent(nil, e, &testTimes)), encodingJSON(t, e); got != want {
		t.Fatalf("appendJSONEvent(%#v)\n got %q\nwant %q", e, got, want)
	}
}

// TestJSONEventEncoding: the hand-written encoder of --json events writes
// what encoding/json writes, byte for byte.
func TestJSONEventEncoding(t *testing.T) {
	base := time.Date(2026, 12, 7, 10, 33, 48, 123456789, time.FixedZone("X", -7*3600))
	for _, e := range []moat.Event{
		{Kind: moat.EventStatus, Time: base, Text: "creating the sandbox"},
		{Kind: moat.EventText, Time: base.Truncate(time.Second), Iteration: 3, Text: "y"},
		{Kind: moat.EventText, Time: base.Truncate(time.Millisecond), Iteration: 1},
		{Kind: moat.EventToolCall, Time: base, Iteration: 12, Tool: "Bash", ToolArg: "echo \"$HOME\" <a> & b\\c\n\t\r\b\f\x00\x1f\x7f"},
		{Kind: moat.EventWarning, Time: time.Time{}, Text: "bad \xff\xfe é ✓ \u2028 \u2029 \uFFFD 😀 \x1b[31m"},
		{Kind: moat.EventStderr, Time: base, Iteration: -1, Text: "\xe2\x80"},
		{Kind: moat.EventText, Time: base.Add(100 * time.Millisecond)}, // the same second, another fraction
		{Kind: moat.EventText, Time: base.Add(time.Second).Truncate(time.Second)},
		{Kind: moat.EventText, Time: time.Date(12026, 1, 2, 3, 4, 5, 6, time.UTC)},
		{Kind: moat.EventText, Time: time.Date(26, 1, 2, 3, 4, 5, 60, time.UTC)},
	} {
		checkJSONEvent(t, e)
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "\"", "\\", "\n", "\x00", "\x1f", "\x7f", "\x80", "\xff", "é", "\u2028", "\u2029", "😀", "<", "&", "\xe2\x80", "\xf0\x9f"}
	for range 5000 {
		var s [3]string
		for j := range s {
			var b []byte
			for range r.IntN(12) {
				b = append(b, alphabet[r.IntN(len(alphabet))]...)
			}
			s[j] = string(b)
		}
		checkJSONEvent(t, moat.Event{Kind: moat.EventKind(s[0]), Time: base.Add(time.Duration(r.Int64N(1e12))), Iteration: r.IntN(3), Text: s[1], Tool: s[2], ToolArg: s[0] + s[1]})
	}
}

func FuzzJSONEvent(f *testing.F) {
	f.Add("text", int64(0), 1, "y", "", "")
	f.Add("tool_call", int64(1e18), 0, "", "Bash", "a\u2028\xff\"\\")
	f.Fuzz(func(t *testing.T, kind string, nanos int64, iter int, text, tool, arg string) {
		checkJSONEvent(t, moat.Event{Kind: moat.EventKind(kind), Time: time.Unix(0, nanos), Iteration: iter, Text: text, Tool: tool, ToolArg: arg})
	})
}
