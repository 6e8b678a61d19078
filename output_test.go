package moat_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent/command"
	"github.com/moatdev/moat/sandbox/local"
)

// commandRun runs the command agent cmd once on repo in a local sandbox.
func commandRun(t *testing.T, repo, cmd string, edit func(*moat.RunOptions)) (*moat.RunResult, error) {
	t.Helper()
	o := moat.RunOptions{Repo: repo, Sandbox: local.New(local.Config{}), Agent: command.New(command.Config{Command: cmd}), Prompt: "go"}
	if edit != nil {
		edit(&o)
	}
	return moat.Run(t.Context(), o)
}

// TestBigOutput: 50 MB of agent output, the completion signal on its very
// last line. The signal is found, the log stays within its cap (1 MiB
// here) and keeps the start and the end, and the error-free run keeps
// nothing of the output in memory (see BenchmarkCLIGigabyte for RSS).
func TestBigOutput(t *testing.T) {
	repo := outputRepo(t)
	const limit = 1 << 20
	cmd := linesCmd(100_000, 500) + "; echo 'the very end: <promise>COMPLETE</promise>'"
	res, err := commandRun(t, repo, "echo first line; "+cmd, func(o *moat.RunOptions) { o.LogLimit = limit })
	if err != nil {
		t.Fatal(err)
	}
	if res.CompletionSignal != moat.DefaultCompletionSignal {
		t.Errorf("completion signal %q, want %q", res.CompletionSignal, moat.DefaultCompletionSignal)
	}
	b, err := os.ReadFile(res.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	if len(log) > limit {
		t.Errorf("the log has %d bytes; its cap is %d", len(log), limit)
	}
	if len(log) < limit*9/10 {
		t.Errorf("the log has %d bytes: too little of its cap of %d", len(log), limit)
	}
	for _, want := range []string{"status: running command\n", "| first line\n", "bytes of the log dropped here", "| the very end: <promise>COMPLETE</promise>\n", "the agent signalled completion"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}

// TestLongLineError: an agent that prints one 20 MB line without a line
// break and fails gets an error that quotes a few KiB of it, not all.
func TestLongLineError(t *testing.T) {
	repo := outputRepo(t)
	for name, cmd := range map[string]string{
		"stdout": "head -c 20000000 /dev/zero | tr '\\0' x; exit 3",
		"stderr": "head -c 20000000 /dev/zero | tr '\\0' y >&2; exit 3",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := commandRun(t, repo, cmd, func(o *moat.RunOptions) { o.LogFile = "-" })
			if !errors.Is(err, moat.ErrAgentFailed) {
				t.Fatalf("Run: %v, want ErrAgentFailed", err)
			}
			msg := err.Error()
			if len(msg) > 5<<10 || !strings.Contains(msg, "more bytes]") || !strings.Contains(msg, "exited with code 3") {
				t.Errorf("error of %d bytes: %.300s…", len(msg), msg)
			}
		})
	}
}

// TestLogsOfOneSecond: runs started in the same second write different
// logs, named by their run ids.
func TestLogsOfOneSecond(t *testing.T) {
	repo := outputRepo(t)
	var wg sync.WaitGroup
	results := make([]*moat.RunResult, 3)
	errs := make([]error, 3)
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = commandRun(t, repo, fmt.Sprintf("echo run %d", i), func(o *moat.RunOptions) { o.Branch = fmt.Sprintf("run-%d", i) })
		})
	}
	wg.Wait()
	name := regexp.MustCompile(`^\d{8}-\d{6}-[0-9a-f]{6}\.log$`)
	seen := map[string]int{}
	for i, res := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !name.MatchString(filepath.Base(res.LogFile)) || filepath.Dir(res.LogFile) != filepath.Join(repo, ".moat", "logs") {
			t.Errorf("log %s: want .moat/logs/<run id>.log", res.LogFile)
		}
		if j, ok := seen[res.LogFile]; ok {
			t.Errorf("runs %d and %d both wrote %s", j, i, res.LogFile)
		}
		seen[res.LogFile] = i
		if b, err := os.ReadFile(res.LogFile); err != nil || !strings.Contains(string(b), fmt.Sprintf("| run %d\n", i)) {
			t.Errorf("log of run %d: %v\n%s", i, err, b)
		}
	}
}

// TestLogCompact: the log of many short lines is not many times the
// output; its agent lines are the output with a short prefix.
func TestLogCompact(t *testing.T) {
	repo := outputRepo(t)
	const lines = 50_000
	res, err := commandRun(t, repo, linesCmd(lines, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(res.LogFile)
	if n := strings.Count(string(b), "| y\n"); n < lines-1 {
		t.Errorf("the log has %d lines \"| y\", want %d", n, lines)
	}
	if len(b) > 2*2*lines+4096 {
		t.Errorf("a log of %d bytes for %d bytes of output", len(b), 2*lines)
	}
}

// TestLogsPruned: a new run's log makes the oldest beyond LogKeep go.
func TestLogsPruned(t *testing.T) {
	repo := outputRepo(t)
	dir := filepath.Join(repo, ".moat", "logs")
	os.MkdirAll(dir, 0o700)
	old := time.Now().Add(-2 * time.Hour)
	for i := range 12 {
		path := filepath.Join(dir, fmt.Sprintf("20260101-0000%02d-abcdef.log", i))
		os.WriteFile(path, []byte("old\n"), 0o600)
		os.Chtimes(path, old, old)
	}
	os.WriteFile(filepath.Join(dir, "mine.log"), nil, 0o600)
	res, err := commandRun(t, repo, "echo hi", func(o *moat.RunOptions) { o.LogKeep = 5 })
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"20260101-000008-abcdef.log", "20260101-000009-abcdef.log", "20260101-000010-abcdef.log", "20260101-000011-abcdef.log", filepath.Base(res.LogFile), "mine.log"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("logs left:\n%v\nwant:\n%v", names, want)
	}
}
