package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatdev/moat"
)

// lockedBuffer is a bytes.Buffer safe to write from the printer's flush
// timer while the test reads it.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until b holds want, for at most 10s (a loaded machine
// may be slow; the printer means to take flushDelay).
func waitFor(t *testing.T, b *lockedBuffer, want string) time.Duration {
	t.Helper()
	start := time.Now()
	for !strings.Contains(b.String(), want) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("after 10s the output lacks %q:\n%q", want, b.String())
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// TestRunPrinterLive: buffered output still reaches stdout and stderr
// while the run goes on, without Finish, and in one write for many lines.
func TestRunPrinterLive(t *testing.T) {
	for _, mode := range []outputMode{modePlain, modeTerminal, modeJSON} {
		var out, errOut lockedBuffer
		p := newRunPrinter(mode, &out, &errOut)
		p.Event(moat.Event{Kind: moat.EventStatus, Text: "running command"})
		for range 1000 {
			p.Event(moat.Event{Kind: moat.EventText, Text: "y"})
		}
		p.Event(moat.Event{Kind: moat.EventText, Text: "last line"})
		took := waitFor(t, &out, "last line")
		if mode != modeJSON {
			waitFor(t, &errOut, "running command")
		}
		if out.writes > 10 {
			t.Errorf("mode %d: 1001 lines took %d writes", mode, out.writes)
		}
		t.Logf("mode %d: the output arrived after %s", mode, took)
		p.Finish(nil, time.Second, nil)
	}
}

// TestRunPrinterOrder: stdout and stderr on one terminal show the lines in
// the order they happened, buffered as they are.
func TestRunPrinterOrder(t *testing.T) {
	var both lockedBuffer
	p := newRunPrinter(modePlain, &both, &both)
	var want strings.Builder
	for i := range 50 {
		switch i % 3 {
		case 0:
			p.Event(moat.Event{Kind: moat.EventText, Text: "text"})
			want.WriteString("| text\n")
		case 1:
			p.Event(moat.Event{Kind: moat.EventStderr, Text: "err"})
			want.WriteString("  [agent stderr] err\n")
		case 2:
			p.Event(moat.Event{Kind: moat.EventStatus, Text: "step"})
			want.WriteString("· step\n")
		}
	}
	p.Finish(nil, time.Second, nil)
	if got := both.String(); got != want.String() {
		t.Errorf("interleaved output:\n%s\nwant:\n%s", got, want.String())
	}
}

// TestRunPrinterStatusComesBack: on a terminal, the status line cleared
// for the agent's output is drawn again once the output pauses.
func TestRunPrinterStatusComesBack(t *testing.T) {
	var out, errOut lockedBuffer
	p := newRunPrinter(modeTerminal, &out, &errOut)
	defer p.Finish(nil, time.Second, nil)
	p.Event(moat.Event{Kind: moat.EventStatus, Text: "running command"})
	waitFor(t, &errOut, "running command")
	p.Event(moat.Event{Kind: moat.EventText, Text: "hello"})
	waitFor(t, &out, "hello\n")
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := errOut.String()
		// The last thing on stderr is the status line, drawn again after
		// the clear that made room for "hello".
		if i := strings.LastIndex(s, "\r\x1b[K"); i >= 0 && strings.Contains(s[i:], "running command") && strings.Count(s, "running command") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status line did not come back:\n%q", s)
		}
		time.Sleep(time.Millisecond)
	}
}
