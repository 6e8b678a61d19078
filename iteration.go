package moat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/sandbox"
)

// iteration runs the agent once. It returns the completion signal seen, if
// any. An agent that prints the signal and then does not exit is stopped
// after CompletionTimeout and counts as complete.
//
// Nothing it keeps grows with the agent's output: the signal is looked
// for in a sliding window, and only the last lines, cut short, are kept
// for an error message.
func (r *runner) iteration(ctx context.Context, h sandbox.Handle) (IterationResult, string, error) {
	o := r.opts
	start := time.Now()
	inv, err := o.Agent.Invocation(r.prompt)
	if err != nil {
		return IterationResult{}, "", fmt.Errorf("moat: %w", err)
	}
	ictx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		mu       sync.Mutex
		scan     = newSignalScanner(o.CompletionSignals)
		signal   string
		result   IterationResult
		last     lineRing // the last stdout lines, cut short
		lastSaid string   // the last error or result the agent reported, cut short
		lastOut  = start  // when the agent last printed anything
		done     bool     // Exec has returned
		timer    *time.Timer
		clock    = lineClock{base: start}
	)
	// The idle timer is not reset for every line (at a million lines a
	// second that would cost more than the rest of a line's way): it
	// fires, looks when the agent last printed, and sets itself for the
	// rest of the wait.
	var idle func()
	idle = func() {
		mu.Lock()
		defer mu.Unlock()
		if done || signal != "" {
			return
		}
		if quiet := time.Since(lastOut); quiet < o.IdleTimeout {
			timer = time.AfterFunc(o.IdleTimeout-quiet, idle)
			return
		}
		cancel(ErrIdleTimeout)
	}
	mu.Lock()
	timer = time.AfterFunc(o.IdleTimeout, idle)
	mu.Unlock()
	defer func() {
		mu.Lock()
		done = true
		timer.Stop()
		mu.Unlock()
	}()
	// The grace for exiting starts once, at the signal: output after it
	// does not extend it.
	found := func(s string) {
		signal = s
		timer.Stop()
		timer = time.AfterFunc(o.CompletionTimeout, func() { cancel(errCompletedHanging) })
	}

	parser := o.Agent.NewParser()
	onLine := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		now := clock.now()
		lastOut = now
		r.emitAt(now, Event{Kind: EventRaw, Text: line})
		last.add(line)
		for _, ev := range parser.Parse(line) {
			switch ev.Kind {
			case agent.EventText, agent.EventResult:
				if ev.Kind == agent.EventText {
					r.emitAt(now, Event{Kind: EventText, Text: ev.Text})
				} else {
					lastSaid = excerpt(ev.Text, excerptLines)
				}
				if signal == "" {
					if s := scan.feedLine(ev.Text); s != "" {
						found(s)
					}
				}
			case agent.EventToolCall:
				r.emitAt(now, Event{Kind: EventToolCall, Tool: ev.Tool, ToolArg: ev.ToolArg})
			case agent.EventSessionID:
				result.SessionID = ev.SessionID
			case agent.EventUsage:
				result.Usage = ev.Usage
			case agent.EventError:
				lastSaid = excerpt(ev.Text, excerptLines)
				r.emitAt(now, Event{Kind: EventWarning, Text: "agent: " + ev.Text})
			}
		}
	}
	r.status("running %s", o.Agent.Name())
	er, err := h.Exec(ictx, inv.Cmd, sandbox.ExecOptions{
		Env:       inv.Env,
		Stdin:     strings.NewReader(inv.Stdin),
		ExitGrace: o.ExitGrace,
		OnLine:    onLine,
		OnStderrLine: func(l string) {
			mu.Lock()
			defer mu.Unlock()
			now := clock.now()
			lastOut = now // any output shows the agent is alive
			r.emitAt(now, Event{Kind: EventStderr, Text: l})
		},
	})
	mu.Lock()
	defer mu.Unlock()
	result.ExitCode = er.ExitCode
	result.Duration = time.Since(start)
	if len(er.Stray) > 0 {
		r.emit(Event{Kind: EventWarning, Text: strayWarning(o.Agent.Name(), o.ExitGrace, er.Stray)})
	}
	if err != nil {
		switch cause := context.Cause(ictx); {
		case errors.Is(cause, errCompletedHanging):
			r.emit(Event{Kind: EventWarning, Text: fmt.Sprintf("the agent printed %s but did not exit within %s; it was stopped", signal, o.CompletionTimeout)})
			return result, signal, nil
		case errors.Is(cause, ErrIdleTimeout):
			return result, "", fmt.Errorf("moat: %w: the agent printed nothing for %s (raise the idle timeout if it needs longer)", ErrIdleTimeout, o.IdleTimeout)
		}
		return result, "", fmt.Errorf("moat: running %s: %w", o.Agent.Name(), err)
	}
	if er.ExitCode != 0 {
		// What the agent said about it beats raw lines: its stderr, else its
		// last reported error or result, else the last stdout lines.
		detail := strings.TrimSpace(lastLinesOf(er.Stderr, excerptLines))
		if detail == "" {
			detail = strings.TrimSpace(lastSaid)
		}
		if detail == "" {
			detail = last.String()
		}
		if detail == "" {
			return result, "", fmt.Errorf("moat: %w: %s exited with code %d and printed nothing", ErrAgentFailed, o.Agent.Name(), er.ExitCode)
		}
		return result, "", fmt.Errorf("moat: %w: %s exited with code %d:\n%s", ErrAgentFailed, o.Agent.Name(), er.ExitCode, detail)
	}
	return result, signal, nil
}

// strayWarning names the processes the agent left running when it
// exited, which were killed once its output had ended or ExitGrace had
// passed.
func strayWarning(agent string, grace time.Duration, stray []string) string {
	const most = 5
	list := strings.Join(stray[:min(len(stray), most)], "; ")
	if len(stray) > most {
		list += fmt.Sprintf("; and %d more", len(stray)-most)
	}
	procs, them := "processes", "them"
	if len(stray) == 1 {
		procs, them = "process", "it"
	}
	return fmt.Sprintf("%s exited, leaving %d %s running in the sandbox; moat stopped %s (exit grace %s): %s",
		agent, len(stray), procs, them, grace, list)
}

// lineClock tells the time of each line of output at half the cost of
// time.Now, which is a good part of a line's way: it reads the monotonic
// clock alone and adds it to a reading of both taken at most 100ms of
// output before, so that a jump of the wall clock (a machine waking from
// sleep) shows within 100ms.
type lineClock struct{ base time.Time }

func (c *lineClock) now() time.Time {
	if d := time.Since(c.base); d >= 0 && d < 100*time.Millisecond {
		return c.base.Add(d)
	}
	c.base = time.Now()
	return c.base
}

// Bounds of the excerpt of a command's output an error message quotes.
const (
	excerptLines     = 20      // the last lines
	excerptLineBytes = 512     // of each line, its start
	excerptBytes     = 4 << 10 // in all, the end
)

// lastLinesOf returns the last n lines of s for an error message: each
// line cut to excerptLineBytes and the whole to excerptBytes, with a note
// where something was cut.
func lastLinesOf(s string, n int) string { return excerpt(s, n) }

// excerpt is lastLinesOf. It looks only at the end of s, however long s is.
func excerpt(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	var lines []string
	size := 0
	for len(lines) < n {
		i := strings.LastIndexByte(s, '\n')
		line := cutLine(s[i+1:])
		if size+len(line) > excerptBytes && len(lines) > 0 {
			lines = append(lines, "[… earlier output cut]")
			break
		}
		lines = append(lines, line)
		size += len(line) + 1
		if i < 0 {
			break
		}
		s = s[:i]
	}
	// lines is newest first.
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	return strings.Join(lines, "\n")
}

// cutLine returns line, or a copy of its start and a note of how much was
// cut when it is longer than excerptLineBytes (a copy, so that the rest of
// a long line is not kept alive).
func cutLine(line string) string {
	if len(line) <= excerptLineBytes {
		return line
	}
	cut := excerptLineBytes
	for cut > 0 && !utf8.RuneStart(line[cut]) {
		cut--
	}
	return strings.Clone(line[:cut]) + fmt.Sprintf(" […%d more bytes]", len(line)-cut)
}

// lineRing keeps the last excerptLines lines added, each cut short.
type lineRing struct {
	lines [excerptLines]string
	n     int // lines ever added
}

func (r *lineRing) add(line string) {
	r.lines[r.n%excerptLines] = cutLine(line)
	r.n++
}

// String returns the lines kept, oldest first, at most excerptBytes (the
// last of them).
func (r *lineRing) String() string {
	var b strings.Builder
	for i := max(0, r.n-excerptLines); i < r.n; i++ {
		if i > max(0, r.n-excerptLines) {
			b.WriteByte('\n')
		}
		b.WriteString(r.lines[i%excerptLines])
	}
	return excerpt(b.String(), excerptLines)
}

// signalScanner finds completion signals in a stream of text fed to it
// piece by piece. It keeps only the last bytes of the stream, fewer than
// the longest signal, so that a signal split across pieces is found and
// memory does not grow with the stream.
type signalScanner struct {
	signals []string
	raw     [][]byte // signals as bytes
	keep    int      // the longest signal's length - 1
	tail    []byte   // the last keep bytes fed
	scratch []byte
}

func newSignalScanner(signals []string) *signalScanner {
	s := &signalScanner{signals: signals}
	for _, sig := range signals {
		s.raw = append(s.raw, []byte(sig))
		s.keep = max(s.keep, len(sig)-1)
	}
	return s
}

// feedLine feeds text and a line break; it returns the first signal (in
// the order given) that the stream now holds and did not before, or "".
func (s *signalScanner) feedLine(text string) string {
	if len(text) > 1024 {
		if sig := s.feed(text); sig != "" {
			return sig
		}
		return s.feed("\n")
	}
	// Short texts (most of them) in one piece, with the line break.
	b := append(append(append(s.scratch[:0], s.tail...), text...), '\n')
	s.scratch = b
	s.setTail(b)
	for i, sig := range s.raw {
		if bytes.Contains(b, sig) {
			return s.signals[i]
		}
	}
	return ""
}

// feed feeds p; it returns what feedLine does.
func (s *signalScanner) feed(p string) string {
	// A signal that ends in p lies in p, or begins in the tail.
	joint := append(append(s.scratch[:0], s.tail...), p[:min(len(p), s.keep)]...)
	s.scratch = joint
	found := ""
	for i, sig := range s.signals {
		if bytes.Contains(joint, s.raw[i]) || strings.Contains(p, sig) {
			found = sig
			break
		}
	}
	if len(p) >= s.keep {
		s.tail = append(s.tail[:0], p[len(p)-s.keep:]...)
	} else {
		s.setTail(joint)
	}
	return found
}

// setTail keeps the last keep bytes of b (which may be s.scratch) as the
// tail.
func (s *signalScanner) setTail(b []byte) {
	s.tail = append(s.tail[:0], b[max(0, len(b)-s.keep):]...)
}
