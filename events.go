package moat

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moatdev/moat/internal/runid"
	"github.com/moatdev/moat/internal/runlog"
)

// output is the runner's state behind its events and log: the run's id
// and its log. A runner holds one (runner.out); its zero value is ready.
type output struct {
	idOnce sync.Once
	id     string

	log *runlog.Log // nil when there is none; guarded by runner.mu
}

// runID returns the run's id ("20261207-103348-a1b2c3", see
// internal/runid), made on first use: the log is named with it, and so
// are the run's refs.
func (r *runner) runID() string {
	r.out.idOnce.Do(func() { r.out.id = runid.New() })
	return r.out.id
}

// SecretKey reports whether an environment variable's name says it holds
// a secret: it ends in _KEY, _TOKEN or _SECRET, or contains PASSWORD or
// CREDENTIAL, in any case (OPENAI_API_KEY, GITHUB_TOKEN, AWS_SECRET,
// DB_PASSWORD, GOOGLE_APPLICATION_CREDENTIALS). The values of such keys
// in RunOptions.Env and ExecOptions.Env are redacted like SecretEnv.
func SecretKey(name string) bool {
	n := strings.ToUpper(name)
	return strings.HasSuffix(n, "_KEY") || strings.HasSuffix(n, "_TOKEN") || strings.HasSuffix(n, "_SECRET") ||
		strings.Contains(n, "PASSWORD") || strings.Contains(n, "CREDENTIAL")
}

// MinSecret is the length in bytes of the shortest value redaction hides:
// shorter ones are too likely to be ordinary words.
const MinSecret = 6

// sandboxEnv is the sandbox's environment: env, then secretEnv over it.
// It is a new map; neither is changed.
func sandboxEnv(env, secretEnv map[string]string) map[string]string {
	if len(secretEnv) == 0 {
		return env
	}
	all := maps.Clone(env)
	if all == nil {
		all = map[string]string{}
	}
	maps.Copy(all, secretEnv)
	return all
}

// secretsOf lists the values output must not show: every value of
// secretEnv, and those of env whose key looks secret (SecretKey) or is one
// of credentialKeys (the agent's). Nothing else: an ordinary value such
// as MODE=delbase is shown as given. Output arrives line by line, so each
// line of a multi-line value (a PEM key) is a secret too; longest first,
// so no shorter value takes a bite out of a longer one. Values shorter
// than MinSecret bytes are left.
func secretsOf(env, secretEnv map[string]string, credentialKeys []string) []string {
	var secrets []string
	add := func(v string) {
		for _, part := range append([]string{v}, strings.Split(v, "\n")...) {
			if part = strings.TrimSpace(part); len(part) >= MinSecret {
				secrets = append(secrets, part)
			}
		}
	}
	for k, v := range env {
		if _, over := secretEnv[k]; !over && (SecretKey(k) || slices.Contains(credentialKeys, k)) {
			add(v)
		}
	}
	for _, v := range secretEnv {
		add(v)
	}
	slices.SortFunc(secrets, func(a, b string) int {
		if d := len(b) - len(a); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(secrets)
}

// redactor replaces secrets by "[redacted]". A nil *redactor hides
// nothing.
type redactor struct {
	secrets []string // longest first
	rep     *strings.Replacer
}

// newRedactor returns a redactor for secrets (see secretsOf), or nil when
// there are none.
func newRedactor(secrets []string) *redactor {
	if len(secrets) == 0 {
		return nil
	}
	pairs := make([]string, 0, 2*len(secrets))
	for _, v := range secrets {
		pairs = append(pairs, v, "[redacted]")
	}
	return &redactor{secrets: secrets, rep: strings.NewReplacer(pairs...)}
}

// redact hides the secrets in s. It runs for every line the agent prints,
// so it looks before it replaces.
func (rd *redactor) redact(s string) string {
	if rd == nil || s == "" {
		return s
	}
	for _, v := range rd.secrets {
		if strings.Contains(s, v) {
			return rd.rep.Replace(s)
		}
	}
	return s
}

// redactError hides the secrets in err's message.
func (rd *redactor) redactError(err error) error {
	if err == nil || rd == nil {
		return err
	}
	if msg := rd.redact(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

// emit sends e to the log and to OnEvent, stamped now.
func (r *runner) emit(e Event) { r.emitAt(time.Now(), e) }

// emitAt is emit with the time given: a caller that already read the
// clock for a line saves reading it again.
func (r *runner) emitAt(now time.Time, e Event) {
	e.Time = now
	e.Text, e.ToolArg = r.redact(e.Text), r.redact(e.ToolArg)
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Iteration == 0 {
		e.Iteration = r.iter
	}
	if l := r.out.log; l != nil {
		switch e.Kind {
		case EventRaw: // the parsed events say it, shorter
		case EventText:
			l.Agent(now, runlog.Text, e.Text)
		case EventToolCall:
			l.Agent(now, runlog.Tool, e.Tool+"("+e.ToolArg+")")
		case EventStderr:
			l.Agent(now, runlog.Stderr, e.Text)
		default:
			l.Line(now, e.Iteration, string(e.Kind), e.Text)
		}
	}
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(e)
	}
}

// phase starts timing the named phase; the returned func ends it. Time in
// a phase that runs more than once (agent, sync out) adds up.
func (r *runner) phase(name string) func() {
	start := time.Now()
	return func() { r.addPhase(name, time.Since(start)) }
}

// addPhase adds d to the phase's time.
func (r *runner) addPhase(name string, d time.Duration) {
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

func (r *runner) status(format string, args ...any) {
	r.emit(Event{Kind: EventStatus, Text: fmt.Sprintf(format, args...)})
}

// logf writes a note to the log only.
func (r *runner) logf(format string, args ...any) {
	now := time.Now()
	msg := r.redact(fmt.Sprintf(format, args...))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.out.log != nil {
		r.out.log.Line(now, 0, "", msg)
	}
}

// redact hides the secrets of the run (see secretsOf) in s: an agent or
// hook that prints its environment must not put them in events, logs or
// errors.
func (r *runner) redact(s string) string { return r.secrets.redact(s) }

// redactedError is err with the secrets hidden in its message.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// closeLog writes out and closes the run's log (putting the end of a
// capped log in order); later events reach no log.
func (r *runner) closeLog() {
	r.mu.Lock()
	l := r.out.log
	r.out.log = nil
	r.mu.Unlock()
	if l != nil {
		l.Close()
	}
}

// openLog opens the run's log: RunOptions.LogFile, or by default
// <repoRoot>/.moat/logs/<run id>.log, which also prunes the oldest logs
// there beyond RunOptions.LogKeep. See internal/runlog for the format and
// the cap.
func (r *runner) openLog(repoRoot string) error {
	path := r.opts.LogFile
	if path == "-" {
		return nil
	}
	var l *runlog.Log
	var err error
	if path == "" {
		dir := filepath.Join(repoRoot, ".moat", "logs")
		l, err = runlog.Create(dir, r.runID(), r.opts.LogLimit)
		if err == nil && r.opts.LogKeep >= 0 {
			if perr := runlog.Prune(dir, r.opts.LogKeep); perr != nil {
				defer r.emit(Event{Kind: EventWarning, Text: "removing old logs: " + perr.Error()})
			}
		}
	} else {
		if err = os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
			l, err = runlog.Open(path, r.opts.LogLimit)
		}
	}
	if err != nil {
		return fmt.Errorf("moat: log file: %w", err)
	}
	r.mu.Lock()
	r.out.log = l
	r.mu.Unlock()
	r.res.LogFile = l.Path()
	return nil
}
