package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent"
)

// sampleRun feeds a printer the events of a small run and finishes it.
func sampleRun(p *runPrinter, runErr error) {
	now := time.Now()
	for _, e := range []moat.Event{
		{Kind: moat.EventStatus, Text: "creating the sandbox (exedev)"},
		{Kind: moat.EventStatus, Text: "syncing the repository into the sandbox"},
		{Kind: moat.EventIterationStart, Iteration: 1, Text: "iteration 1/2"},
		{Kind: moat.EventText, Iteration: 1, Text: "I will run the tests."},
		{Kind: moat.EventToolCall, Iteration: 1, Tool: "Bash", ToolArg: "npm test\n  --coverage"},
		{Kind: moat.EventRaw, Iteration: 1, Text: `{"type":"raw"}`},
		{Kind: moat.EventStderr, Iteration: 1, Text: "npm WARN old lockfile"},
		{Kind: moat.EventWarning, Text: "CopyToWorktree: x not found"},
		{Kind: moat.EventIterationEnd, Iteration: 1, Text: "iteration 1/2: 1 commit(s)"},
	} {
		e.Time = now
		p.Event(e)
	}
	res := &moat.RunResult{
		Branch:           "main",
		CompletionSignal: "<promise>COMPLETE</promise>",
		Commits:          []moat.Commit{{SHA: "0123456789abcdef0123456789abcdef01234567", Subject: "fix: the tests"}},
		Iterations:       []moat.IterationResult{{Usage: &agent.Usage{InputTokens: 10, OutputTokens: 5}}, {Usage: &agent.Usage{InputTokens: 1, OutputTokens: 2}}},
		Phases:           []moat.Phase{{Name: "create", Duration: 1500 * time.Millisecond}},
		Kept:             []moat.Kept{{What: "patches", Path: "/r/.moat/patches/x", Reason: "apply failed", Fix: "git am x"}},
		LogFile:          "/r/.moat/logs/x.log",
	}
	p.Finish(res, 3*time.Second, runErr)
}

func TestRunPrinterPlain(t *testing.T) {
	var out, errOut bytes.Buffer
	sampleRun(newRunPrinter(modePlain, &out, &errOut), nil)
	for _, want := range []string{
		"── iteration 1/2 ──\n", "| I will run the tests.\n", "> Bash(npm test ⏎ --coverage)\n",
		"phases: create 1.5s\n", "1 commit(s) landed on main:\n  0123456789 fix: the tests\n",
		"tokens: 11 in, 7 out", "kept patches /r/.moat/patches/x: apply failed\n  to finish by hand:\n    git am x\n",
		"log: /r/.moat/logs/x.log\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	for _, want := range []string{"· creating the sandbox (exedev)\n", "[agent stderr] npm WARN old lockfile\n", "! CopyToWorktree: x not found\n"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	if all := out.String() + errOut.String(); strings.Contains(all, "\x1b") || strings.Contains(all, `"type":"raw"`) {
		t.Errorf("plain output has escape codes or raw lines:\n%q", all)
	}
}

func TestRunPrinterTerminal(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	var out, errOut bytes.Buffer
	sampleRun(newRunPrinter(modeTerminal, &out, &errOut), nil)
	// Finished steps become permanent lines with their duration; the
	// status line is cleared before anything else is printed.
	if !strings.Contains(errOut.String(), "✓\x1b[0m creating the sandbox (exedev) ") {
		t.Errorf("stderr lacks the finished step:\n%q", errOut.String())
	}
	if !strings.Contains(errOut.String(), "\r\x1b[K") {
		t.Errorf("stderr never clears a status line:\n%q", errOut.String())
	}
	if !strings.Contains(out.String(), "\x1b[1m── iteration 1/2 ──\x1b[0m") {
		t.Errorf("no bold iteration header:\n%q", out.String())
	}
	t.Setenv("NO_COLOR", "1")
	out.Reset()
	errOut.Reset()
	sampleRun(newRunPrinter(modeTerminal, &out, &errOut), nil)
	if strings.Contains(out.String(), "\x1b[") {
		t.Errorf("NO_COLOR set, yet colour on stdout:\n%q", out.String())
	}
}

func TestRunPrinterQuiet(t *testing.T) {
	var out, errOut bytes.Buffer
	sampleRun(newRunPrinter(modeQuiet, &out, &errOut), nil)
	if got := out.String(); strings.Contains(got, "I will run") || strings.Contains(got, "phases:") || !strings.Contains(got, "1 commit(s) landed on main") || !strings.Contains(got, "kept patches") {
		t.Errorf("quiet stdout:\n%s", got)
	}
	if got := errOut.String(); got != "moat: warning: CopyToWorktree: x not found\n" {
		t.Errorf("quiet stderr: %q", got)
	}
}

func TestRunPrinterJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	sampleRun(newRunPrinter(modeJSON, &out, &errOut), fmt.Errorf("moat: %w: exited with code 3", moat.ErrAgentFailed))
	if errOut.Len() != 0 {
		t.Errorf("stderr: %q", errOut.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	var types []string
	for _, l := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		types = append(types, ev["type"].(string))
	}
	want := "status status iteration_start text tool_call stderr warning iteration_end result"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("event types:\n got %s\nwant %s", got, want)
	}
	var res jsonResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatal(err)
	}
	if res.OK || res.ExitCode != 1 || res.ErrorKind != "agent_failed" || res.Usage == nil || res.Usage.InputTokens != 11 ||
		len(res.Commits) != 1 || res.Phases[0].DurationMS != 1500 || res.Kept[0].Fix != "git am x" {
		t.Errorf("result: %+v", res)
	}
}

func TestErrorKindInterrupted(t *testing.T) {
	err := fmt.Errorf("%w: %w", errInterrupted, errors.New("context canceled"))
	if r := jsonResultOf(nil, 0, err); r.ErrorKind != "interrupted" || r.ExitCode != exitInterrupted {
		t.Errorf("%+v", r)
	}
}

func TestCompactToolCall(t *testing.T) {
	long := strings.Repeat("é", 150)
	got := compactToolCall("Edit", long)
	if n := len([]rune(got)); n != len("Edit()")+100 || !strings.HasSuffix(got, "…)") {
		t.Errorf("%d runes: %s", n, got)
	}
}

// TestRunPrinterNoAgentEscapes: escape sequences the agent prints reach
// neither stdout nor stderr, in any mode but --json (where JSON escapes
// them).
func TestRunPrinterNoAgentEscapes(t *testing.T) {
	for _, mode := range []outputMode{modeTerminal, modePlain, modeQuiet} {
		var out, errOut bytes.Buffer
		p := newRunPrinter(mode, &out, &errOut)
		evil := "\x1b]52;c;cHduZWQ=\a\x1b[2J"
		for _, e := range []moat.Event{
			{Kind: moat.EventStatus, Text: "  hook says " + evil},
			{Kind: moat.EventText, Text: evil},
			{Kind: moat.EventToolCall, Tool: "Bash" + evil, ToolArg: evil},
			{Kind: moat.EventStderr, Text: evil},
			{Kind: moat.EventWarning, Text: evil},
		} {
			p.Event(e)
		}
		p.Finish(&moat.RunResult{Commits: []moat.Commit{{SHA: "abc", Subject: evil}}, Kept: []moat.Kept{{Reason: evil, Fix: "a\n" + evil}}}, time.Second, nil)
		for name, b := range map[string]string{"stdout": out.String(), "stderr": errOut.String()} {
			if strings.Contains(b, "\x1b]") || strings.Contains(b, "\x1b[2J") || strings.Contains(b, "\a") {
				t.Errorf("mode %d: the agent's escape sequence reached %s: %q", mode, name, b)
			}
		}
	}
}

// TestAgentCannotForgeMoatLines: an agent that prints every line moat
// printed in a real run (its summary, its status lines), as text, as tool
// calls and on stderr, with line breaks and carriage returns, adds only
// lines that carry the agent's marks: the lines without one are exactly
// those of the run without the agent's forgeries, on stdout (where
// scripts read the summary) and on stderr.
func TestAgentCannotForgeMoatLines(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	for _, mode := range []outputMode{modePlain, modeTerminal} {
		var out, errOut bytes.Buffer
		sampleRun(newRunPrinter(mode, &out, &errOut), nil)
		moatLines := strings.Split(out.String()+errOut.String(), "\n")

		var fOut, fErr bytes.Buffer
		p := newRunPrinter(mode, &fOut, &fErr)
		for _, l := range moatLines {
			for _, e := range []moat.Event{
				{Kind: moat.EventText, Text: l},
				{Kind: moat.EventText, Text: "\r" + l},
				{Kind: moat.EventText, Text: "x\n" + l + "\n"},
				{Kind: moat.EventToolCall, Tool: l},
				{Kind: moat.EventToolCall, Tool: "\n" + l, ToolArg: "\n" + l},
				{Kind: moat.EventStderr, Text: l},
				{Kind: moat.EventStderr, Text: "\r" + l},
				{Kind: moat.EventStderr, Text: "x\n" + l},
			} {
				p.Event(e)
			}
		}
		p.Event(moat.Event{Kind: moat.EventText, Text: strings.Join(moatLines, "\n")})
		sampleRun(p, nil)

		got := unmarked(fOut.String(), markText, markTool)
		if want := unmarked(out.String(), markText, markTool); got != want || !strings.Contains(got, "summary") {
			t.Errorf("mode %d: stdout's lines without the agent's marks:\n%s\nwant moat's alone:\n%s", mode, got, want)
		}
		if mode == modePlain { // a terminal's stderr has the spinner and step times
			if got, want := unmarked(fErr.String(), agentStderrMark), unmarked(errOut.String(), agentStderrMark); got != want || !strings.Contains(got, "creating") {
				t.Errorf("stderr's lines without the agent's mark:\n%s\nwant moat's alone:\n%s", got, want)
			}
		}
	}
}

// unmarked returns the lines of s (colour removed) that start with none of
// marks.
func unmarked(s string, marks ...string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		plain := colour.ReplaceAllString(l, "")
		if plain == "" || slices.ContainsFunc(marks, func(m string) bool { return strings.HasPrefix(plain, m) }) {
			continue
		}
		b.WriteString(plain)
	}
	return b.String()
}
