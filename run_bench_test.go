package moat_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent/command"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
)

// benchRepo makes a repository of files files and commits commits (the
// first commit adds every file, the others change two each) with git
// fast-import, which takes a second rather than minutes.
func benchRepo(b *testing.B, files, commits int) string {
	b.Helper()
	dir := b.TempDir()
	if out, err := exec.Command("git", "init", "-q", "-b", "main", dir).CombinedOutput(); err != nil {
		b.Fatalf("git init: %v %s", err, out)
	}
	var s bytes.Buffer
	when := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for c := 1; c <= commits; c++ {
		fmt.Fprintf(&s, "commit refs/heads/main\nmark :%d\ncommitter Bench <bench@example.com> %d +0000\ndata <<EOM\ncommit %d\nEOM\n", c, when+int64(c), c)
		if c > 1 {
			fmt.Fprintf(&s, "from :%d\n", c-1)
		}
		var touch []int
		if c == 1 {
			for f := range files {
				touch = append(touch, f)
			}
		} else {
			touch = []int{(c * 7) % files, (c * 13) % files}
		}
		for _, f := range touch {
			content := fmt.Sprintf("file %d, version %d\n%s", f, c, bytes.Repeat([]byte("some source text\n"), 20+f%50))
			fmt.Fprintf(&s, "M 644 inline src/d%02d/file%04d.txt\ndata %d\n%s\n", f%50, f, len(content), content)
		}
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = &s
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("git fast-import: %v %s", err, out)
	}
	for _, args := range [][]string{{"checkout", "-q", "-f", "main"}, {"config", "user.name", "Bench"}, {"config", "user.email", "bench@example.com"}} {
		c := exec.Command("git", args...)
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	return dir
}

// BenchmarkRunPhases times each phase of a run with an instant agent (one
// commit) on the emulator, for a repository of 2,000 files and 1,000
// commits, and sets sync in + sync out beside the bare local work they
// stand for: git bundle create + git clone of the same repository.
//
//	go test -run '^$' -bench RunPhases -benchtime 5x .
func BenchmarkRunPhases(b *testing.B) {
	repo := benchRepo(b, 2000, 1000)
	srv := exedevtest.NewServer(b)
	p := exedev.New(srv.Config())
	ag := command.New(command.Config{Command: `echo instant >> instant.txt && git add instant.txt && git commit -q -m instant`})

	sums := map[string]time.Duration{}
	var order []string
	var bare time.Duration
	for b.Loop() {
		res, err := moat.Run(context.Background(), moat.RunOptions{Repo: repo, Sandbox: p, Agent: ag, Prompt: "go", LogFile: "-"})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Commits) != 1 {
			b.Fatalf("commits: %+v", res.Commits)
		}
		for _, ph := range res.Phases {
			if _, ok := sums[ph.Name]; !ok {
				order = append(order, ph.Name)
			}
			sums[ph.Name] += ph.Duration
		}

		b.StopTimer()
		tmp := b.TempDir()
		start := time.Now()
		bundle := filepath.Join(tmp, "repo.bundle")
		for _, args := range [][]string{{"-C", repo, "bundle", "create", "-q", bundle, "--all"}, {"clone", "-q", bundle, filepath.Join(tmp, "clone")}} {
			if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
				b.Fatalf("git %v: %v %s", args, err, out)
			}
		}
		bare += time.Since(start)
		os.RemoveAll(tmp)
		b.StartTimer()
	}
	n := float64(b.N)
	for _, name := range order {
		b.ReportMetric(float64(sums[name].Microseconds())/1000/n, strings.ReplaceAll(name, " ", "-")+"-ms")
	}
	b.ReportMetric(float64(bare.Microseconds())/1000/n, "bare-bundle+clone-ms")
	b.ReportMetric(float64(sums["sync in"]+sums["sync out"])/float64(bare), "sync/bare")
}
