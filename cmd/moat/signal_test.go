//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/execout"
)

// TestInterruptCleansUp sends Ctrl-C (SIGINT) to a real moat process in
// the middle of a run: the work done so far must be kept on a branch, the
// sandbox deleted, and moat must exit non-zero, saying what it kept.
func TestInterruptCleansUp(t *testing.T) {
	bin := moatBinary(t)
	repo := scratchRepo(t)
	sandboxes := t.TempDir()
	cmd := exec.Command(bin, "run", "--repo", repo, "--sandbox", "local", "--agent", "command",
		"--agent-cmd", `echo x > x.txt && git add x.txt && git commit -qm "before interrupt" && echo ready && sleep 100`, "-p", "go")
	cmd.Env = append(os.Environ(), "TMPDIR="+sandboxes)
	out := &execout.Capped{N: 1 << 20} // read while moat writes: must be safe
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "ready") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the agent never started:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if during, _ := filepath.Glob(filepath.Join(sandboxes, "moat-local-*")); len(during) != 1 {
		t.Fatalf("want one local sandbox under TMPDIR while the agent runs, have %v", during)
	}
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
			t.Errorf("moat exited %d (%v) after an interrupt; want %d", code, err, exitInterrupted)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("moat did not exit within 30s of Ctrl-C:\n%s", out.String())
	}
	text := out.String()
	if !strings.Contains(text, "interrupted; saving the agent's work") || !strings.Contains(text, "kept branch moat/") {
		t.Errorf("output does not tell what happened:\n%s", text)
	}
	if got := gitIn(t, repo, "log", "-1", "--format=%s", "--branches=moat/*"); got != "before interrupt" {
		t.Errorf("the commit made before the interrupt is not on a kept branch: %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(sandboxes, "moat-local-*")); len(left) > 0 {
		t.Errorf("local sandboxes left: %v", left)
	}
}
