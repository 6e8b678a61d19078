package moat_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent/command"
	"github.com/moatdev/moat/internal/worktree/hostgit/hostgittest"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/local"
)

// linesCmd is a shell command printing n lines of size bytes each (the
// newline included).
func linesCmd(n, size int) string {
	if size <= 2 {
		return fmt.Sprintf("yes | head -n %d", n)
	}
	return fmt.Sprintf(`yes "$(printf '%%0%dd' 0)" | head -n %d`, size-1, n)
}

// outputRepo makes a small repository for the output benchmarks and tests.
func outputRepo(tb testing.TB) string { return hostgittest.EmptyRepo(tb) }

// BenchmarkAgentOutput measures how fast agent output goes through a whole
// moat.Run (local sandbox, the command agent printing N lines, the log on,
// OnEvent set) beside the same command run through the same sandbox with
// an OnLine that does nothing: the cost of the pipe and line splitting
// alone. It reports both rates (lines per second of the agent phase and of
// the bare Exec) and moat/bare.
//
//	go test -run '^$' -bench AgentOutput -benchtime 3x .
func BenchmarkAgentOutput(b *testing.B) {
	for _, tc := range []struct {
		name        string
		lines, size int
	}{
		{"2-byte", 3_000_000, 2},
		{"100-byte", 1_000_000, 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			repo := outputRepo(b)
			p := local.New(local.Config{})
			cmd := linesCmd(tc.lines, tc.size)
			var moatTime, bareTime time.Duration
			for b.Loop() {
				// The bare stream: same sandbox kind, same command.
				h, err := p.Create(context.Background(), sandbox.CreateOptions{})
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				start := time.Now()
				r, err := h.Exec(context.Background(), cmd, sandbox.ExecOptions{OnLine: func(string) { n++ }})
				bareTime += time.Since(start)
				h.Close(context.Background())
				if err != nil || r.ExitCode != 0 || n != tc.lines {
					b.Fatalf("bare exec: %v, exit %d, %d lines", err, r.ExitCode, n)
				}

				events := 0
				res, err := moat.Run(context.Background(), moat.RunOptions{
					Repo: repo, Sandbox: p, Agent: command.New(command.Config{Command: cmd}), Prompt: "go",
					OnEvent: func(e moat.Event) { events++ },
				})
				if err != nil {
					b.Fatal(err)
				}
				for _, ph := range res.Phases {
					if ph.Name == "agent" {
						moatTime += ph.Duration
					}
				}
				if events < 2*tc.lines {
					b.Fatalf("%d events for %d lines", events, tc.lines)
				}
				if st, err := os.Stat(res.LogFile); err == nil {
					b.ReportMetric(float64(st.Size())/float64(tc.lines*tc.size), "log-bytes/output-byte")
				}
				os.RemoveAll(filepath.Join(repo, ".moat", "logs"))
			}
			n := float64(b.N * tc.lines)
			moatRate, bareRate := n/moatTime.Seconds(), n/bareTime.Seconds()
			b.ReportMetric(moatRate, "moat-lines/s")
			b.ReportMetric(bareRate, "bare-lines/s")
			b.ReportMetric(moatRate/bareRate, "moat/bare")
		})
	}
}
