// Package agenttest helps test agents: it feeds recorded streams to parsers
// and compares the events with golden files.
package agenttest

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/moatdev/moat/agent"
)

var update = flag.Bool("update", false, "rewrite golden files with the events the parsers produce")

// ParseFile feeds each line of the file at path, without its "\n", to p
// and returns all events. Lines may be of any length.
func ParseFile(t testing.TB, p agent.Parser, path string) []agent.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var events []agent.Event
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			events = append(events, p.Parse(strings.TrimSuffix(line, "\n"))...)
		}
		if errors.Is(err, io.EOF) {
			return events
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Render writes events one per line, in a form made for golden files:
// strings are quoted, and strings longer than 200 bytes are shown by their
// length, hash and start.
func Render(events []agent.Event) string {
	var b strings.Builder
	for _, e := range events {
		switch e.Kind {
		case agent.EventText, agent.EventResult, agent.EventError:
			fmt.Fprintf(&b, "%s %s", e.Kind, str(e.Text))
		case agent.EventToolCall:
			fmt.Fprintf(&b, "%s %s %s", e.Kind, e.Tool, str(e.ToolArg))
		case agent.EventSessionID:
			fmt.Fprintf(&b, "%s %s", e.Kind, e.SessionID)
		case agent.EventUsage:
			if u := e.Usage; u == nil {
				fmt.Fprintf(&b, "%s <nil>", e.Kind)
			} else {
				fmt.Fprintf(&b, "%s input=%d cache_creation=%d cache_read=%d output=%d",
					e.Kind, u.InputTokens, u.CacheCreationInputTokens, u.CacheReadInputTokens, u.OutputTokens)
			}
		default:
			fmt.Fprintf(&b, "%s %+v", e.Kind, e)
		}
		// Fields that do not belong to the kind must be empty.
		if e.Kind != agent.EventText && e.Kind != agent.EventResult && e.Kind != agent.EventError && e.Text != "" ||
			e.Kind != agent.EventToolCall && (e.Tool != "" || e.ToolArg != "") ||
			e.Kind != agent.EventSessionID && e.SessionID != "" ||
			e.Kind != agent.EventUsage && e.Usage != nil {
			fmt.Fprintf(&b, " STRAY FIELDS %+v", e)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func str(s string) string {
	if len(s) <= 200 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("<%d bytes sha256:%x> %q…", len(s), sha256.Sum256([]byte(s)), s[:60])
}

// Golden compares got with the golden file at path, or rewrites the file
// when the tests run with -update.
func Golden(t testing.TB, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the tests with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("events differ from %s (-update rewrites it)\n%s", path, diff(string(want), got))
	}
}

// diff lists the lines that differ, with their numbers.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
