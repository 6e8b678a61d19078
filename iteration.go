package moat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/sandbox"
)

// iteration runs the agent once. It returns the completion signal seen, if
// any. An agent that prints the signal and then hangs is stopped after
// CompletionTimeout and counts as complete.
func (r *runner) iteration(ctx context.Context, h sandbox.Handle) (IterationResult, string, error) {
	o := r.opts
	start := time.Now()
	inv, err := o.Agent.Invocation(r.prompt)
	if err != nil {
		return IterationResult{}, "", fmt.Errorf("moat: %w", err)
	}
	ictx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	maxSignal := 0
	for _, s := range o.CompletionSignals {
		maxSignal = max(maxSignal, len(s))
	}
	var (
		mu        sync.Mutex
		scanned   int
		text      strings.Builder
		signal    string
		result    IterationResult
		lastLines []string
		lastSaid  string // the last error or result the agent reported
	)
	timer := time.AfterFunc(o.IdleTimeout, func() { cancel(ErrIdleTimeout) })
	defer func() {
		mu.Lock()
		timer.Stop()
		mu.Unlock()
	}()
	parser := o.Agent.NewParser()
	onLine := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		r.emit(Event{Kind: EventRaw, Text: line})
		lastLines = append(lastLines, line)
		if len(lastLines) > 20 {
			lastLines = lastLines[1:]
		}
		for _, ev := range parser.Parse(line) {
			switch ev.Kind {
			case agent.EventText, agent.EventResult:
				if ev.Kind == agent.EventText {
					r.emit(Event{Kind: EventText, Text: ev.Text})
				} else {
					lastSaid = ev.Text
				}
				text.WriteString(ev.Text)
				text.WriteByte('\n')
			case agent.EventToolCall:
				r.emit(Event{Kind: EventToolCall, Tool: ev.Tool, ToolArg: ev.ToolArg})
			case agent.EventSessionID:
				result.SessionID = ev.SessionID
			case agent.EventUsage:
				result.Usage = ev.Usage
			case agent.EventError:
				lastSaid = ev.Text
				r.emit(Event{Kind: EventWarning, Text: "agent: " + ev.Text})
			}
		}
		if signal == "" {
			// Only the new text can hold a new match (plus the tail of the
			// old text, for a signal split across events).
			all := text.String()
			from := max(0, scanned-maxSignal)
			for _, s := range o.CompletionSignals {
				if strings.Contains(all[from:], s) {
					signal = s
					break
				}
			}
			scanned = len(all)
		}
		if signal != "" {
			timer.Stop()
			timer = time.AfterFunc(o.CompletionTimeout, func() { cancel(errCompletedHanging) })
		} else {
			timer.Reset(o.IdleTimeout)
		}
	}
	r.status("running %s", o.Agent.Name())
	er, err := h.Exec(ictx, inv.Cmd, sandbox.ExecOptions{
		Env:    inv.Env,
		Stdin:  strings.NewReader(inv.Stdin),
		OnLine: onLine,
		OnStderrLine: func(l string) {
			mu.Lock()
			defer mu.Unlock()
			r.emit(Event{Kind: EventStderr, Text: l})
			if signal == "" {
				timer.Reset(o.IdleTimeout) // any output shows the agent is alive
			}
		},
	})
	mu.Lock()
	defer mu.Unlock()
	result.ExitCode = er.ExitCode
	result.Duration = time.Since(start)
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
		detail := strings.TrimSpace(lastLinesOf(er.Stderr, 20))
		if detail == "" {
			detail = strings.TrimSpace(lastSaid)
		}
		if detail == "" {
			detail = strings.Join(lastLines, "\n")
		}
		return result, "", fmt.Errorf("moat: %w: %s exited with code %d:\n%s", ErrAgentFailed, o.Agent.Name(), er.ExitCode, detail)
	}
	return result, signal, nil
}

func lastLinesOf(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
