package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/internal/safetext"
)

// outputMode is how `moat run` shows a run.
type outputMode int

const (
	modeTerminal outputMode = iota // status line with a spinner, colour
	modePlain                      // the same as plain lines: a pipe or a dumb terminal
	modeJSON                       // NDJSON events on stdout, nothing else there
	modeQuiet                      // errors, warnings and what landed
)

// isTerminal reports whether w is a terminal. It is a variable so tests can
// pretend; it never writes to w.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// pickMode chooses the output mode from the flags and where output goes.
// Only stderr is probed for the spinner; stdout carries the agent's text
// and is never decorated unless it is a terminal too.
func pickMode(jsonOut, quiet bool, stdout, stderr io.Writer) outputMode {
	switch {
	case jsonOut:
		return modeJSON
	case quiet:
		return modeQuiet
	case os.Getenv("TERM") == "dumb" || !isTerminal(stderr) || !isTerminal(stdout):
		return modePlain
	}
	return modeTerminal
}

// runPrinter shows a run's events for people, or as JSON.
//
// Its output is buffered, so that an agent printing a million lines a
// second is not slowed down by a write per line: what it prints reaches
// stdout and stderr at the latest flushDelay later (a terminal still shows
// it live), and Finish writes out everything. At most one of the two
// buffers holds anything at a time (writing to one first writes out the
// other), so the two streams keep their order on a shared terminal.
type runPrinter struct {
	mode        outputMode
	out, errOut io.Writer
	color       bool

	mu         sync.Mutex
	bout, berr *bufio.Writer // out and errOut, buffered
	flushTimer *time.Timer   // armed while a buffer holds bytes
	armed      bool
	writeErr   bool      // a write to out failed (reported once)
	finished   bool      // Finish has run: no status line any more
	status     string    // the current step, "" when none
	statusAt   time.Time // when it started
	drawn      bool      // a status line is on screen
	frame      int
	stopSpin   chan struct{}
	spinDone   chan struct{}
	jsonEnc    *json.Encoder
	jsonBuf    []byte
	jsonTimes  timeCache
	iterations int
	// closeFailed: a warning said closing the sandbox failed. A run that
	// failed earlier still closes its sandbox, and that step is not what
	// failed.
	closeFailed bool
}

// closingStep is the status of the run's last step, closing the sandbox.
const closingStep = "closing the sandbox"

// flushDelay bounds how long printed output waits in runPrinter's
// buffers.
const flushDelay = 25 * time.Millisecond

func newRunPrinter(mode outputMode, out, errOut io.Writer) *runPrinter {
	p := &runPrinter{mode: mode, out: out, errOut: errOut}
	p.bout, p.berr = bufio.NewWriterSize(out, 64<<10), bufio.NewWriterSize(errOut, 16<<10)
	p.flushTimer = time.AfterFunc(time.Hour, p.flushTick)
	p.flushTimer.Stop()
	p.color = mode == modeTerminal && os.Getenv("NO_COLOR") == ""
	if mode == modeJSON {
		p.jsonEnc = json.NewEncoder(p.bout)
		p.jsonEnc.SetEscapeHTML(false)
	}
	if mode == modeTerminal {
		p.stopSpin, p.spinDone = make(chan struct{}), make(chan struct{})
		go p.spin()
	}
	return p
}

// stdout returns the buffer to write stdout through, after writing out
// what stderr's holds; p.mu is held.
func (p *runPrinter) stdout() *bufio.Writer {
	if p.berr.Buffered() > 0 {
		p.berr.Flush()
	}
	p.arm()
	return p.bout
}

// stderr is stdout for stderr.
func (p *runPrinter) stderr() *bufio.Writer {
	if p.bout.Buffered() > 0 {
		p.flushOut()
	}
	p.arm()
	return p.berr
}

// arm makes sure what is buffered is written soon; p.mu is held.
func (p *runPrinter) arm() {
	if !p.armed {
		p.armed = true
		p.flushTimer.Reset(flushDelay)
	}
}

func (p *runPrinter) flushTick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = false
	p.flush()
	// The status line, cleared to print the agent's output, comes back.
	if p.mode == modeTerminal && !p.drawn && p.status != "" && !p.finished {
		p.drawStatus()
		p.berr.Flush()
	}
}

// flush writes out both buffers (one at most holds anything); p.mu is
// held.
func (p *runPrinter) flush() {
	p.flushOut()
	p.berr.Flush()
}

func (p *runPrinter) flushOut() {
	if err := p.bout.Flush(); err != nil && !p.writeErr {
		p.writeErr = true
		what := "output"
		if p.mode == modeJSON {
			what = "--json output"
		}
		fmt.Fprintf(p.errOut, "moat: writing %s: %v\n", what, err)
	}
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func (p *runPrinter) spin() {
	defer close(p.spinDone)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stopSpin:
			return
		case <-t.C:
			p.mu.Lock()
			p.frame++
			p.drawStatus()
			p.flush()
			p.mu.Unlock()
		}
	}
}

// drawStatus redraws the status line on stderr; p.mu is held.
func (p *runPrinter) drawStatus() {
	if p.status == "" {
		return
	}
	elapsed := ""
	if d := time.Since(p.statusAt).Truncate(time.Second); d >= time.Second {
		elapsed = " " + d.String()
	}
	// The line must fit the terminal, or it wraps and the next \r clears
	// only its last row: cut the text (visible characters, no escapes).
	text := p.status
	if w, _, err := termSize(p.errOut); err == nil && w > 10 {
		text = truncateRunes(text, w-1-2-utf8.RuneCountInString(elapsed))
	}
	line := spinnerFrames[p.frame%len(spinnerFrames)] + " " + text + p.dim(elapsed)
	p.stderr().WriteString("\r\x1b[K" + line)
	p.drawn = true
}

// clearStatus removes the status line so other output can be printed; p.mu
// is held.
func (p *runPrinter) clearStatus() {
	if p.drawn {
		p.stderr().WriteString("\r\x1b[K")
		p.drawn = false
	}
}

// endStep prints the finished step as a permanent line; p.mu is held.
func (p *runPrinter) endStep() {
	if p.status == "" {
		return
	}
	p.clearStatus()
	fmt.Fprintf(p.stderr(), "%s %s %s\n", p.green("✓"), p.status, p.dim(stepDuration(time.Since(p.statusAt))))
	p.status = ""
}

func (p *runPrinter) setStep(text string) {
	p.endStep()
	p.status, p.statusAt = text, time.Now()
	p.drawStatus()
}

// Marks that start every line of the agent's on stdout, on a terminal and
// in plain output: whatever the agent prints, it cannot make a line of
// moat's own (the iteration headers, the summary), which never starts
// with one of them. The run log uses the same marks.
const (
	markText = "| " // a line of the agent's text
	markTool = "> " // a tool call: Tool(argument)
)

// agentStderrMark starts, on stderr, every line the agent wrote there;
// moat's own lines there start with "·", "!", "✓", "✗" or "moat:".
const agentStderrMark = "  [agent stderr] "

// Event shows one event of a run.
//
// Text that is not moat's own (the agent's words, tool calls and stderr,
// hook output, warnings that quote a sandbox) is made safe as
// internal/safetext says before it is printed: its escape sequences never
// reach the user's terminal, in a pipe either (colour is ours to add; OSC
// 52 would write the clipboard), and a line break in it starts a new line
// with its mark.
func (p *runPrinter) Event(e moat.Event) {
	if e.Kind == moat.EventRaw {
		return // no mode shows raw lines
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == modeJSON {
		p.jsonBuf = appendJSONEvent(p.jsonBuf[:0], e, &p.jsonTimes)
		p.stdout().Write(p.jsonBuf)
		return
	}
	if p.mode == modeQuiet {
		if e.Kind == moat.EventWarning {
			fmt.Fprintf(p.stderr(), "moat: warning: %s\n", safetext.String(e.Text))
		}
		return
	}
	// On a terminal, the status line is cleared for other output and
	// drawn again when the output pauses (flushTick), not after every
	// line.
	terminal := p.mode == modeTerminal
	switch e.Kind {
	case moat.EventStatus:
		text := safetext.String(e.Text)
		if terminal {
			if strings.HasPrefix(text, "  ") { // a hook's output line
				p.clearStatus()
				w := p.stderr()
				w.WriteString(p.dim(text))
				w.WriteByte('\n')
				return
			}
			p.setStep(text)
			return
		}
		fmt.Fprintf(p.stderr(), "· %s\n", text)
	case moat.EventIterationStart:
		p.iterations++
		text := safetext.String(e.Text)
		if terminal {
			p.endStep()
			fmt.Fprintf(p.stdout(), "\n%s\n", p.bold("── "+text+" ──"))
			return
		}
		fmt.Fprintf(p.stdout(), "── %s ──\n", text)
	case moat.EventIterationEnd:
		if terminal {
			p.endStep()
		}
		fmt.Fprintf(p.stderr(), "· %s\n", safetext.String(e.Text))
	case moat.EventText:
		p.clearStatus()
		w := p.stdout()
		mark := p.dim(markText)
		b := append(w.AvailableBuffer(), mark...)
		w.Write(safetext.AppendLines(b, e.Text, mark))
	case moat.EventToolCall:
		p.clearStatus()
		w := p.stdout()
		w.WriteString(p.dim(markTool + compactToolCall(e.Tool, e.ToolArg)))
		w.WriteByte('\n')
	case moat.EventWarning:
		if strings.HasPrefix(e.Text, closingStep+":") {
			p.closeFailed = true
		}
		p.clearStatus()
		fmt.Fprintf(p.stderr(), "%s %s\n", p.yellow("!"), safetext.String(e.Text))
	case moat.EventStderr:
		p.clearStatus()
		w := p.stderr()
		w.WriteString(p.dim(agentStderrMark))
		w.Write(safetext.Append(w.AvailableBuffer(), e.Text))
		w.WriteByte('\n')
	}
}

// stepDuration is how long a step took, for people: "18ms", "1.2s", "3m4s".
func stepDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// compactToolCall renders a tool call on one short line, made safe:
// Bash(npm test). The argument's line breaks are shown as ⏎.
func compactToolCall(tool, arg string) string {
	arg = safetext.String(strings.Join(strings.Fields(strings.ReplaceAll(arg, "\n", " ⏎ ")), " "))
	return fmt.Sprintf("%s(%s)", safetext.String(tool), truncateRunes(arg, 100))
}

func truncateRunes(s string, n int) string {
	if n <= 1 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// Finish stops the spinner and prints the result: the summary for people,
// the result event for --json.
func (p *runPrinter) Finish(res *moat.RunResult, took time.Duration, runErr error) {
	if p.stopSpin != nil {
		close(p.stopSpin)
		<-p.spinDone
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finished = true
	p.flushTimer.Stop()
	p.armed = false
	defer p.flush()
	switch p.mode {
	case modeJSON:
		p.writeJSON(jsonResultOf(res, took, runErr))
		return
	case modeTerminal:
		if runErr == nil || p.status == closingStep && !p.closeFailed {
			p.endStep()
		} else {
			p.clearStatus()
			if p.status != "" {
				fmt.Fprintf(p.stderr(), "%s %s\n", p.red("✗"), p.status)
			}
		}
	}
	p.summary(res, took, runErr)
}

// Abandon is Finish for a moat that quits at once, the run still going:
// what is buffered is written out, the status line cleared, and with
// --json the result event ends the stream, listing in res.Kept what is
// left behind. After Finish it only flushes.
func (p *runPrinter) Abandon(res *moat.RunResult, took time.Duration, why error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.flush()
	if p.finished {
		return
	}
	p.finished = true
	p.clearStatus()
	p.status = ""
	if p.mode == modeJSON {
		p.writeJSON(jsonResultOf(res, took, why))
	}
}

func (p *runPrinter) summary(res *moat.RunResult, took time.Duration, runErr error) {
	if res == nil {
		return
	}
	w := p.stdout()
	quiet := p.mode == modeQuiet
	if !quiet {
		fmt.Fprintf(w, "\n%s\n", p.bold(fmt.Sprintf("── summary (%s) ──", stepDuration(took))))
		if runErr != nil {
			// What failed comes first; the details follow on stderr.
			fmt.Fprintf(w, "%s %s\n", p.red("failed:"), safetext.String(failureLine(runErr)))
		}
		if len(res.Phases) > 0 {
			var parts []string
			for _, ph := range res.Phases {
				parts = append(parts, fmt.Sprintf("%s %s", ph.Name, stepDuration(ph.Duration)))
			}
			fmt.Fprintf(w, "phases: %s\n", strings.Join(parts, ", "))
		}
		fmt.Fprintf(w, "iterations: %d", len(res.Iterations))
		if res.CompletionSignal != "" {
			fmt.Fprintf(w, " (completed: %s)", res.CompletionSignal)
		}
		fmt.Fprintln(w)
	}
	if len(res.Commits) > 0 {
		fmt.Fprintf(w, "%d commit(s) landed on %s:\n", len(res.Commits), res.Branch)
		for _, c := range res.Commits {
			fmt.Fprintf(w, "  %s %s\n", p.yellow(fmt.Sprintf("%.10s", c.SHA)), safetext.String(c.Subject))
		}
		if m := res.MergeCommit; m != nil {
			fmt.Fprintf(w, "merged with moat's merge commit %s (%s had moved)\n", p.yellow(fmt.Sprintf("%.10s", m.SHA)), res.Branch)
		}
	} else if runErr == nil {
		fmt.Fprintf(w, "no commits (branch %s unchanged)\n", res.Branch)
	}
	if u := totalUsage(res); u != nil && !quiet {
		fmt.Fprintf(w, "tokens: %d in, %d out (cache: %d read, %d written)\n",
			u.InputTokens, u.OutputTokens, u.CacheReadInputTokens, u.CacheCreationInputTokens)
	}
	// What was kept is printed even with -q: it is how work is recovered.
	for _, k := range res.Kept {
		fmt.Fprintf(w, "%s %s %s: %s\n", p.yellow("kept"), k.What, safetext.String(k.Path), safetext.String(k.Reason))
		if k.Fix != "" {
			fmt.Fprintf(w, "  to finish by hand:\n    %s\n", safetext.Lines(k.Fix, "    "))
		}
	}
	if res.LogFile != "" && !quiet {
		fmt.Fprintf(w, "log: %s\n", res.LogFile)
	}
}

// failureLine is what failed, in one line: the first line of err without
// moat's prefix.
func failureLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	for strings.HasPrefix(line, "moat: ") {
		line = strings.TrimPrefix(line, "moat: ")
	}
	return strings.TrimSuffix(strings.TrimSpace(line), ":")
}

func totalUsage(res *moat.RunResult) *agent.Usage {
	var sum agent.Usage
	seen := false
	for _, it := range res.Iterations {
		if u := it.Usage; u != nil {
			seen = true
			sum.InputTokens += u.InputTokens
			sum.OutputTokens += u.OutputTokens
			sum.CacheReadInputTokens += u.CacheReadInputTokens
			sum.CacheCreationInputTokens += u.CacheCreationInputTokens
		}
	}
	if !seen {
		return nil
	}
	return &sum
}

func (p *runPrinter) writeJSON(v any) {
	p.stdout()
	if err := p.jsonEnc.Encode(v); err != nil {
		fmt.Fprintf(p.errOut, "moat: writing --json output: %v\n", err)
	}
}

func (p *runPrinter) paint(code, s string) string {
	if !p.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}
func (p *runPrinter) bold(s string) string   { return p.paint("1", s) }
func (p *runPrinter) dim(s string) string    { return p.paint("2", s) }
func (p *runPrinter) red(s string) string    { return p.paint("31", s) }
func (p *runPrinter) green(s string) string  { return p.paint("32", s) }
func (p *runPrinter) yellow(s string) string { return p.paint("33", s) }

func termSize(w io.Writer) (width, height int, err error) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, 0, fmt.Errorf("not a file")
	}
	return term.GetSize(int(f.Fd()))
}
