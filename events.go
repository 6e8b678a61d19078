package moat

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// secretReplacer replaces the values of env (credentials) by
// "[redacted]"; nil when there is nothing to hide. Output arrives line by
// line, so each line of a multi-line value (a PEM key) is a secret too;
// longest first, so no shorter value takes a bite out of a longer one.
// Values shorter than 6 bytes are left: too likely to be ordinary words.
func secretReplacer(env map[string]string) *strings.Replacer {
	var secrets []string
	for _, v := range env {
		for _, part := range append([]string{v}, strings.Split(v, "\n")...) {
			if part = strings.TrimSpace(part); len(part) >= 6 {
				secrets = append(secrets, part)
			}
		}
	}
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	var pairs []string
	for _, v := range slices.Compact(secrets) {
		pairs = append(pairs, v, "[redacted]")
	}
	if len(pairs) == 0 {
		return nil
	}
	return strings.NewReplacer(pairs...)
}

// redactError hides the values secrets replaces in err's message.
func redactError(err error, secrets *strings.Replacer) error {
	if err == nil || secrets == nil {
		return err
	}
	if msg := secrets.Replace(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

func (r *runner) emit(e Event) {
	e.Time = time.Now()
	e.Text, e.ToolArg = r.redact(e.Text), r.redact(e.ToolArg)
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Iteration == 0 {
		e.Iteration = r.iter
	}
	if r.log != nil && e.Kind != EventRaw {
		line := e.Text
		if e.Kind == EventToolCall {
			line = fmt.Sprintf("%s(%s)", e.Tool, e.ToolArg)
		}
		fmt.Fprintf(r.log, "%s [%d] %s: %s\n", e.Time.Format(time.RFC3339), e.Iteration, e.Kind, line)
	}
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(e)
	}
}

// phase starts timing the named phase; the returned func ends it. Time in
// a phase that runs more than once (agent, sync out) adds up.
func (r *runner) phase(name string) func() {
	start := time.Now()
	return func() {
		d := time.Since(start)
		r.mu.Lock()
		defer r.mu.Unlock()
		for i := range r.res.Phases {
			if r.res.Phases[i].Name == name {
				r.res.Phases[i].Duration += d
				return
			}
		}
		r.res.Phases = append(r.res.Phases, Phase{Name: name, Duration: d})
	}
}

func (r *runner) status(format string, args ...any) {
	r.emit(Event{Kind: EventStatus, Text: fmt.Sprintf(format, args...)})
}

func (r *runner) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log != nil {
		fmt.Fprintf(r.log, "%s %s\n", time.Now().Format(time.RFC3339), r.redact(fmt.Sprintf(format, args...)))
	}
}

// redact hides the values of RunOptions.Env (credentials) in s: an agent
// or hook that prints its environment must not put them in events, logs or
// errors. Values shorter than 6 bytes are left: too likely to be ordinary
// words.
func (r *runner) redact(s string) string {
	if r.secrets == nil || s == "" {
		return s
	}
	return r.secrets.Replace(s)
}

// redactedError is err with the Env values hidden in its message.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func (r *runner) closeLog() {
	if r.log != nil {
		r.log.Close()
	}
}

func (r *runner) openLog(repoRoot string) error {
	path := r.opts.LogFile
	if path == "-" {
		return nil
	}
	if path == "" {
		path = filepath.Join(repoRoot, ".moat", "logs", time.Now().Format("20060102-150405")+".log")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("moat: log file: %w", err)
	}
	// The log holds the agent's output, which may quote private code.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("moat: log file: %w", err)
	}
	r.log = f
	r.res.LogFile = path
	return nil
}
