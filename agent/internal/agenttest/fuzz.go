package agenttest

import (
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/moatdev/moat/agent"
)

// Helpers for fuzzing stream parsers: what an event may hold is judged
// against the strings of the line it came from.

// IsObject reports whether s is exactly one JSON object.
func IsObject(s string) bool {
	return strings.HasPrefix(s, "{") && json.Valid([]byte(s))
}

// StringsOf returns every string (keys too) of the JSON text s, decoded.
func StringsOf(t testing.TB, s string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber() // numbers of any size
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decoding %q: %v", s, err)
		}
		if str, ok := tok.(string); ok {
			out[str] = true
		}
	}
}

// JoinOf reports whether s is one or more of strs joined by sep.
func JoinOf(s string, strs map[string]bool, sep string) bool {
	// reach[i]: s[:i] is such a join (0 stands for "nothing yet").
	reach := make([]bool, len(s)+1)
	reach[0] = true
	for i := 0; i <= len(s); i++ {
		if !reach[i] {
			continue
		}
		start := i
		if i > 0 {
			if !strings.HasPrefix(s[i:], sep) {
				continue
			}
			start = i + len(sep)
		}
		for str := range strs {
			if strings.HasPrefix(s[start:], str) {
				if end := start + len(str); end > i || i == 0 {
					reach[end] = true
				}
			}
		}
	}
	return reach[len(s)] && (len(s) > 0 || strs[""])
}

// SameEvents compares events, usage by value; nil and empty are the same.
func SameEvents(a, b []agent.Event) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}
