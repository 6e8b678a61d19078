//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

// BenchmarkNoteLeftovers measures the check moat run makes for leftovers of
// the repository (noteLeftovers) with none and with 20 local sandboxes and
// 20 emulator VMs left (their owner gone), against one git process (a run
// starts dozens) as the baseline.
func BenchmarkNoteLeftovers(b *testing.B) {
	repo := b.TempDir()
	for _, args := range [][]string{{"init", "-q"}, {"-c", "user.name=B", "-c", "user.email=b@example.com", "commit", "-q", "--allow-empty", "-m", "init"}} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	for _, n := range []int{0, 20} {
		tmp := b.TempDir()
		b.Setenv("TMPDIR", tmp)
		makeLeftovers(b, tmp, repo, n)
		b.Run(fmt.Sprintf("note/%d-leftovers", n), func(b *testing.B) {
			for b.Loop() {
				noteLeftovers(context.Background(), io.Discard, repo, nil)
			}
		})
	}
	b.Run("baseline/git-rev-parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := hostgit.Line(context.Background(), 0, repo, "rev-parse", "HEAD"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// makeLeftovers makes n local sandbox directories and n emulator VM
// directories under tmp, as killed runs of repo leave them.
func makeLeftovers(b *testing.B, tmp, repo string, n int) {
	b.Helper()
	rec := sandbox.NewRecord(map[string]string{sandbox.LabelRepo: repo})
	rec.Owner.PID = 1 << 22 // above pid_max: gone
	emu := filepath.Join(tmp, "exedevtest-bench")
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	if n > 0 {
		must(os.MkdirAll(filepath.Join(emu, "vms"), 0o700))
		must(os.WriteFile(filepath.Join(emu, "owner.json"), rec.Marshal(), 0o600))
	}
	for i := range n {
		dir := filepath.Join(tmp, fmt.Sprintf("moat-local-%d", i))
		must(os.MkdirAll(filepath.Join(dir, "home", "workspace"), 0o700))
		must(os.WriteFile(filepath.Join(tmp, fmt.Sprintf(".moat-local-%d.json", i)), rec.Marshal(), 0o600))
		vm := filepath.Join(emu, "vms", fmt.Sprintf("moat-vm%d.%d", i, i))
		must(os.MkdirAll(filepath.Join(vm, "home", ".moat"), 0o700))
		must(os.WriteFile(filepath.Join(vm, "vm.json"), fmt.Appendf(nil, `{"name":"moat-vm%d","created":"2026-01-01T00:00:00Z","marker":"x%d"}`, i, i), 0o600))
		must(os.WriteFile(filepath.Join(vm, "home", ".moat", "labels.json"), fmt.Appendf(nil, `{"repo":%q}`, repo), 0o600))
	}
}
