package moat

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestSignalScanner: fed a text piece by piece, the scanner finds a signal
// exactly when the whole text (pieces joined by line breaks, as the agent's
// text events are) first holds it, wherever the pieces split it.
func TestSignalScanner(t *testing.T) {
	signals := []string{"<promise>COMPLETE</promise>", "DONE\nOK", "xyzzy"}
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"<promise>", "COMPLETE", "</promise>", "DONE", "OK", "xy", "zzy", "x", "y", "z", "<", ">", "a", "b"}
	for range 20000 {
		s := newSignalScanner(signals)
		var all strings.Builder
		for piece := range 12 {
			var p strings.Builder
			for range r.IntN(6) {
				p.WriteString(alphabet[r.IntN(len(alphabet))])
			}
			if r.IntN(20) == 0 { // a long piece takes the other path
				p.WriteString(strings.Repeat("a", 1100))
				p.WriteString(alphabet[r.IntN(len(alphabet))])
			}
			before := all.String()
			all.WriteString(p.String() + "\n")
			want := ""
			for _, sig := range signals {
				if strings.Contains(all.String(), sig) && !strings.Contains(before, sig) {
					want = sig
					break
				}
			}
			// feedLine returns the first signal in the order given that
			// the new text completes; when two are completed at once, it
			// may name either, so only "found or not" is compared then.
			got := s.feedLine(p.String())
			if (got == "") != (want == "") || got != "" && !strings.Contains(all.String(), got) {
				t.Fatalf("piece %d: feedLine = %q, want %q; text so far %q", piece, got, want, all.String())
			}
			if got != "" {
				break // the iteration stops looking once it has one
			}
		}
		if len(s.tail) > len("<promise>COMPLETE</promise>") {
			t.Fatalf("the scanner keeps %d bytes", len(s.tail))
		}
	}
}

func TestExcerpt(t *testing.T) {
	long := strings.Repeat("é", 10<<20) // 20 MB, cut inside no rune
	for name, tc := range map[string]struct {
		in   string
		want []string // in order
	}{
		"short":      {"a\nb\nc\n", []string{"a\nb\nc"}},
		"last lines": {strings.Repeat("line\n", 100) + "the end", []string{"line\nthe end"}},
		"long line":  {"start\n" + long + "\nend", []string{"start\néé", "é […", " more bytes]\nend"}},
		"no newline": {long, []string{"éé […"}},
		"many long":  {strings.Repeat(strings.Repeat("x", 1000)+"\n", 30), []string{"[… earlier output cut]\nxxx", "x […488 more bytes]"}},
	} {
		got := excerpt(tc.in, excerptLines)
		if len(got) > excerptBytes+200 {
			t.Errorf("%s: %d bytes", name, len(got))
		}
		rest := got
		for _, w := range tc.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("%s: excerpt lacks %q (in order):\n%.300s", name, w, got)
				break
			}
			rest = rest[i+len(w):]
		}
		if !strings.HasSuffix(tc.in, "\n") && !strings.HasSuffix(got, tc.in[max(0, len(tc.in)-3):]) && name != "no newline" {
			t.Errorf("%s: excerpt does not end with the input's end: %q", name, got[max(0, len(got)-20):])
		}
	}

	var r lineRing
	for i := range 1000 {
		if i%2 == 0 {
			r.add(long) // each kept line is a short copy, not the 20 MB
		} else {
			r.add("short")
		}
	}
	if got := r.String(); len(got) > excerptBytes+200 || !strings.HasSuffix(got, "short") {
		t.Errorf("lineRing: %d bytes ending %q", len(got), got[max(0, len(got)-20):])
	}
	for _, l := range r.lines {
		if len(l) > excerptLineBytes+50 {
			t.Errorf("lineRing keeps a line of %d bytes", len(l))
		}
	}
}

func TestLineClock(t *testing.T) {
	c := lineClock{base: time.Now()}
	prev := c.now()
	for range 1000 {
		now := c.now()
		if now.Before(prev) || time.Since(now) > time.Second || now.Sub(time.Now()) > 0 {
			t.Fatalf("lineClock: %v after %v (now %v)", now, prev, time.Now())
		}
		prev = now
	}
	// An old base is read afresh.
	c.base = time.Now().Add(-time.Hour)
	if d := time.Since(c.now()); d < 0 || d > time.Minute {
		t.Errorf("lineClock with an old base is %v behind", d)
	}
}
