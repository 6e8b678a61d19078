//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/worktree/hostgit/hostgittest"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/local"
)

// buildMoat builds cmd/moat into a temporary directory (the build cache
// makes a second build a link): the real binary, without test code.
func buildMoat(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "moat")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// linesCmd prints n lines of size bytes each (the newline included).
func linesCmd(n, size int) string {
	if size <= 2 {
		return fmt.Sprintf("yes | head -n %d", n)
	}
	return fmt.Sprintf(`yes "$(printf '%%0%dd' 0)" | head -n %d`, size-1, n)
}

// outputRepo makes an empty repository on main.
func outputRepo(tb testing.TB) string { return hostgittest.EmptyRepo(tb) }

// cliRun is what one `moat run` subprocess did.
type cliRun struct {
	agent   time.Duration // the agent phase, as moat reports it
	maxRSS  int64         // peak resident set of moat (and what it waited for), bytes
	logSize int64
	tail    string // the end of stdout
	stderr  string
}

// runMoat runs `moat run` (bin) with a command agent running agentCmd in
// repo, with extra args, reading its stdout as a terminal would (and as
// fast as it comes) but keeping only the end.
func runMoat(tb testing.TB, bin, repo, agentCmd string, args ...string) cliRun {
	tb.Helper()
	r, err := tryMoat(tb, bin, repo, agentCmd, args...)
	if err != nil {
		tb.Fatalf("moat run: %v\nstderr:\n%s\nstdout (end):\n%s", err, r.stderr, r.tail)
	}
	return r
}

// tryMoat is runMoat for a run that may fail: the error is moat's exit.
func tryMoat(tb testing.TB, bin, repo, agentCmd string, args ...string) (cliRun, error) {
	tb.Helper()
	os.RemoveAll(filepath.Join(repo, ".moat", "logs"))
	cmd := exec.Command(bin, append([]string{"run", "--repo", repo, "--sandbox", "local", "--agent", "command", "--agent-cmd", agentCmd, "-p", "go"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tb.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tail := make([]byte, 0, 128<<10)
	buf := make([]byte, 256<<10)
	for {
		n, err := stdout.Read(buf)
		if len(tail)+n > cap(tail) {
			keep := max(0, cap(tail)/2-n)
			tail = append(tail[:0], tail[len(tail)-min(keep, len(tail)):]...)
		}
		tail = append(tail, buf[:n]...)
		if err != nil {
			break
		}
	}
	werr := cmd.Wait()
	r := cliRun{tail: string(tail), stderr: stderr.String(), maxRSS: cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024}
	if werr != nil {
		return r, werr
	}
	if logs, _ := filepath.Glob(filepath.Join(repo, ".moat", "logs", "*.log")); len(logs) == 1 {
		st, _ := os.Stat(logs[0])
		r.logSize = st.Size()
	}
	// The agent phase: from the result event, or the summary's phases.
	lines := strings.Split(strings.TrimSpace(r.tail), "\n")
	var res jsonResult
	if json.Unmarshal([]byte(lines[len(lines)-1]), &res) == nil && res.Type == "result" {
		for _, ph := range res.Phases {
			if ph.Name == "agent" {
				r.agent = time.Duration(ph.DurationMS) * time.Millisecond
			}
		}
	} else if m := regexp.MustCompile(`(?m)^phases: .*\bagent ([0-9][0-9.hmsµn]*)`).FindStringSubmatch(r.tail); m != nil {
		r.agent, _ = time.ParseDuration(m[1])
	}
	if r.agent == 0 {
		tb.Fatalf("no agent phase in moat's output:\n%s", r.tail)
	}
	return r, nil
}

// bareExec is the time the same command takes through the same sandbox
// with an OnLine that does nothing: the cost of the stream itself.
func bareExec(tb testing.TB, cmd string, lines int) time.Duration {
	tb.Helper()
	h, err := local.New(local.Config{}).Create(context.Background(), sandbox.CreateOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close(context.Background())
	n := 0
	start := time.Now()
	r, err := h.Exec(context.Background(), cmd, sandbox.ExecOptions{OnLine: func(string) { n++ }})
	took := time.Since(start)
	if err != nil || r.ExitCode != 0 || n != lines {
		tb.Fatalf("bare exec: %v, exit %d, %d lines of %d", err, r.ExitCode, n, lines)
	}
	return took
}

// BenchmarkCLIOutput runs the real moat binary (`moat run --sandbox
// local`, the command agent printing N lines, stdout a pipe read as fast
// as it comes, the default log) and sets the rate of its agent phase
// beside the same command through the same sandbox with an OnLine that
// does nothing, in plain and --json output. It reports both rates,
// moat/bare, moat's peak RSS and the log's size.
//
//	go test -run '^$' -bench CLIOutput -benchtime 3x ./cmd/moat
func BenchmarkCLIOutput(b *testing.B) {
	bin := buildMoat(b)
	repo := outputRepo(b)
	for _, tc := range []struct {
		name        string
		lines, size int
		args        []string
	}{
		{"2-byte/plain", 3_000_000, 2, nil},
		{"2-byte/json", 3_000_000, 2, []string{"--json"}},
		{"100-byte/plain", 1_000_000, 100, nil},
		{"100-byte/json", 1_000_000, 100, []string{"--json"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cmd := linesCmd(tc.lines, tc.size)
			var moatTime, bareTime time.Duration
			var rss, logSize int64
			for b.Loop() {
				bareTime += bareExec(b, cmd, tc.lines)
				r := runMoat(b, bin, repo, cmd, tc.args...)
				moatTime += r.agent
				rss, logSize = max(rss, r.maxRSS), max(logSize, r.logSize)
			}
			n := float64(b.N * tc.lines)
			moatRate, bareRate := n/moatTime.Seconds(), n/bareTime.Seconds()
			b.ReportMetric(moatRate, "moat-lines/s")
			b.ReportMetric(bareRate, "bare-lines/s")
			b.ReportMetric(moatRate/bareRate, "moat/bare")
			b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(logSize)/(1<<20), "log-MiB")
		})
	}
}

// BenchmarkCLIGigabyte: the real moat binary while the agent prints 1 GB
// (10 million lines of 100 bytes, or 537 million lines "y"), then the
// completion signal: moat's peak RSS must stay under 100 MB and the log
// under its 64 MiB cap, and the signal at the very end must still be
// found.
//
//	go test -run '^$' -bench CLIGigabyte -benchtime 1x ./cmd/moat
func BenchmarkCLIGigabyte(b *testing.B) {
	bin := buildMoat(b)
	repo := outputRepo(b)
	for _, tc := range []struct {
		name        string
		lines, size int
	}{
		{"100-byte", 1e9 / 100, 100},
		{"2-byte", 1 << 29, 2},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cmd := linesCmd(tc.lines, tc.size) + "; echo '<promise>COMPLETE</promise>'"
			for b.Loop() {
				r := runMoat(b, bin, repo, cmd)
				b.ReportMetric(float64(r.maxRSS)/(1<<20), "peak-RSS-MiB")
				b.ReportMetric(float64(r.logSize)/(1<<20), "log-MiB")
				b.ReportMetric(float64(tc.lines)/r.agent.Seconds(), "moat-lines/s")
				if r.maxRSS >= 100e6 {
					b.Errorf("peak RSS %d bytes for 1 GB of agent output; want under 100 MB", r.maxRSS)
				}
				if r.logSize == 0 || r.logSize > 64<<20 {
					b.Errorf("log of %d bytes; want at most the 64 MiB cap", r.logSize)
				}
				if !strings.Contains(r.tail, "(completed: <promise>COMPLETE</promise>)") {
					b.Errorf("the completion signal at the end of 1 GB was not found:\n%s", r.tail)
				}
			}
		})
	}
}

// BenchmarkSyncLimit2GB: the real moat binary, the agent committing a
// 2 GiB file (sparse: git reads 2 GiB of zeros, the disk holds none).
// Under the default 100 MiB per-file limit, and with that raised under a
// 1 GiB per-run limit, the run must end with an error naming the file and
// the limit, and moat's peak RSS (with the git processes it waited for)
// must stay under 100 MB: nothing of the file is sent.
//
//	go test -run '^$' -bench SyncLimit2GB -benchtime 1x ./cmd/moat
func BenchmarkSyncLimit2GB(b *testing.B) {
	bin := buildMoat(b)
	agent := "truncate -s 2G big.bin && git add big.bin && git commit -qm big"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"per-file", nil, `the agent's file "big.bin" is 2.0 GiB, over the limit of 100.0 MiB per file`},
		{"per-run", []string{"--max-file-size", "4GiB"}, "add up to 2.0 GiB, over the limit of 1.0 GiB per run"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				repo := outputRepo(b)
				r, err := tryMoat(b, bin, repo, agent, tc.args...)
				b.ReportMetric(float64(r.maxRSS)/(1<<20), "peak-RSS-MiB")
				if err == nil || !strings.Contains(r.stderr, tc.want) {
					b.Fatalf("moat run: %v; want it to fail saying %q:\n%s", err, tc.want, r.stderr)
				}
				if r.maxRSS >= 100e6 {
					b.Errorf("peak RSS %d bytes; want under 100 MB", r.maxRSS)
				}
			}
		})
	}
}
