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
	"github.com/moatdev/moat/sandbox/local"
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

// BenchmarkRunPhases times a whole run with an instant agent (one commit)
// on the local sandbox, phase by phase, and sets it beside the bare work
// it stands for, timed in the same loop: git bundle create of the branch,
// git clone of that bundle, git bundle create of the agent's commit, git
// fetch of it. The target is run/bare ≤ 2. It runs for a repository of
// 2,000 files with 1,000 and with 20,000 commits, to show which phases
// grow with the history.
//
//	go test -run '^$' -bench RunPhases -benchtime 5x .
func BenchmarkRunPhases(b *testing.B) {
	for _, commits := range []int{1000, 20000} {
		b.Run(fmt.Sprintf("commits=%d", commits), func(b *testing.B) { benchRunPhases(b, 2000, commits) })
	}
}

func benchRunPhases(b *testing.B, files, commits int) {
	repo := benchRepo(b, files, commits)
	p := local.New(local.Config{})
	ag := command.New(command.Config{Command: `echo instant >> instant.txt && git add instant.txt && git commit -q -m instant`})

	sums := map[string]time.Duration{}
	var order []string
	var bare, wall time.Duration
	for b.Loop() {
		start := time.Now()
		res, err := moat.Run(context.Background(), moat.RunOptions{Repo: repo, Sandbox: p, Agent: ag, Prompt: "go", LogFile: "-"})
		wall += time.Since(start)
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
		bare += bareWork(b, repo)
		b.StartTimer()
	}
	n := float64(b.N)
	var table strings.Builder
	for _, name := range order {
		ms := float64(sums[name].Microseconds()) / 1000 / n
		b.ReportMetric(ms, strings.ReplaceAll(name, " ", "-")+"-ms")
		fmt.Fprintf(&table, "  %-9s %7.1f ms\n", name, ms)
	}
	b.ReportMetric(float64(wall.Microseconds())/1000/n, "run-ms")
	b.ReportMetric(float64(bare.Microseconds())/1000/n, "bare-ms")
	b.ReportMetric(float64(wall)/float64(bare), "run/bare")
	b.Logf("%d files, %d commits: run %.0f ms, bare work %.0f ms, ratio %.2f (target ≤ 2)\n%s",
		files, commits, float64(wall.Microseconds())/1000/n, float64(bare.Microseconds())/1000/n, float64(wall)/float64(bare), table.String())
}

// bareWork does by hand what a run's git work is, and times it: bundle the
// branch, clone the bundle, commit, bundle the commit, fetch it back.
func bareWork(b *testing.B, repo string) time.Duration {
	tmp := b.TempDir()
	defer os.RemoveAll(tmp)
	clone := filepath.Join(tmp, "clone")
	in, out := filepath.Join(tmp, "in.bundle"), filepath.Join(tmp, "out.bundle")
	start := time.Now()
	steps := [][]string{
		{"-C", repo, "bundle", "create", "-q", in, "main"},
		{"clone", "-q", "-b", "main", in, clone},
		{"-C", clone, "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-q", "--allow-empty", "-m", "instant"},
		{"-C", clone, "bundle", "create", "-q", out, "HEAD", "^main@{u}"},
		{"-C", repo, "fetch", "-q", out, "HEAD:refs/bench/out"},
	}
	for _, args := range steps {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	d := time.Since(start)
	exec.Command("git", "-C", repo, "update-ref", "-d", "refs/bench/out").Run()
	return d
}
