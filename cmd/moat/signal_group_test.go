//go:build linux

package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/execout"
)

// sigRun is one moat run under test, started in a process group of its
// own as coreutils' timeout starts its command.
type sigRun struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *execout.Capped
	done    chan error
	tmp     string // the run's TMPDIR: sandboxes and temporary files
	sleeper string // the agent's sleep, unique: found in /proc if it outlives moat
}

// startSigRun starts moat run on repo with an agent that commits, then
// runs setup (if any), prints ready and sleeps.
func startSigRun(t *testing.T, bin, repo, sandboxKind, setup string, args []string, env ...string) *sigRun {
	t.Helper()
	r := &sigRun{t: t, tmp: t.TempDir(), done: make(chan error, 1), out: &execout.Capped{N: 1 << 20}}
	secs := 100000 + rand.IntN(800000)
	r.sleeper = fmt.Sprintf("sleep\x00%d\x00", secs)
	agentCmd := `echo "$$" > work.txt && git add work.txt && git commit -qm "the agent's work" && ` + setup + ` echo ready && exec sleep ` + fmt.Sprint(secs)
	r.cmd = exec.Command(bin, "run", "--repo", repo, "--sandbox", sandboxKind, "--agent", "command", "--agent-cmd", agentCmd, "-p", "go", "--log-file", "-")
	r.cmd.Args = append(r.cmd.Args, args...)
	r.cmd.Env = append(os.Environ(), append([]string{"TMPDIR=" + r.tmp}, env...)...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	ready := func() bool {
		o := r.out.String()
		return strings.Contains(o, "| ready") || strings.Contains(o, `"text":"ready"`)
	}
	for !ready() {
		if time.Now().After(deadline) {
			syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("the agent never started:\n%s", r.out.String())
		}
		select {
		case err := <-r.done:
			t.Fatalf("moat exited (%v) before the agent was ready:\n%s", err, r.out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return r
}

// wait waits for moat to exit and returns its exit code.
func (r *sigRun) wait() int {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(60 * time.Second):
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		r.t.Fatalf("moat did not exit within 60s of the signals:\n%s", r.out.String())
	}
	return r.cmd.ProcessState.ExitCode()
}

// strays lists the processes still running the agent's sleep.
func (r *sigRun) strays() []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(r.sleeper)) {
			found = append(found, filepath.Base(filepath.Dir(p)))
		}
	}
	return found
}

// tmpLeft lists what is left in the run's TMPDIR.
func (r *sigRun) tmpLeft() []string {
	entries, _ := os.ReadDir(r.tmp)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestTimeoutKeepsWork signals moat as `timeout 5 moat run …` does when
// the time is up: SIGTERM to moat, then at once to its whole process
// group. That is one request to stop, not two: every time, the agent's
// commit must reach the repository, on the run's kept branch (an
// interrupted run is never merged), and nothing else may be left: no
// worktree, no other branch or ref, no sandbox or temporary directory,
// no process of the agent's.
func TestTimeoutKeepsWork(t *testing.T) {
	bin := moatBinary(t)
	n := 20
	if testing.Short() {
		n = 3
	}
	for _, kind := range []string{"local", "emulator"} {
		t.Run(kind, func(t *testing.T) {
			repo := scratchRepo(t)
			for i := range n {
				r := startSigRun(t, bin, repo, kind, "", nil)
				pid := r.cmd.Process.Pid
				syscall.Kill(pid, syscall.SIGTERM)
				syscall.Kill(-pid, syscall.SIGTERM)
				if code := r.wait(); code != exitInterrupted {
					t.Fatalf("try %d: moat exited %d; want %d:\n%s", i+1, code, exitInterrupted, r.out.String())
				}
				text := r.out.String()
				if strings.Contains(text, "quitting at once") {
					t.Fatalf("try %d: SIGTERM to moat and to its group was taken as two interrupts:\n%s", i+1, text)
				}
				branches := strings.Fields(gitIn(t, repo, "for-each-ref", "--format=%(refname)", "refs/heads/moat/"))
				if len(branches) != 1 {
					t.Fatalf("try %d: want the run's one kept branch, have %v:\n%s", i+1, branches, text)
				}
				if got := gitIn(t, repo, "log", "-1", "--format=%s", branches[0]); got != "the agent's work" {
					t.Fatalf("try %d: the kept branch %s has %q, not the agent's commit:\n%s", i+1, branches[0], got, text)
				}
				if !strings.Contains(text, "kept branch "+strings.TrimPrefix(branches[0], "refs/heads/")) {
					t.Errorf("try %d: the output does not name the kept branch:\n%s", i+1, text)
				}
				if refs := gitIn(t, repo, "for-each-ref", "--format=%(refname)", "refs/moat/"); refs != "" {
					t.Errorf("try %d: refs left: %s", i+1, refs)
				}
				if wt := gitIn(t, repo, "worktree", "list", "--porcelain"); strings.Count(wt, "worktree ") != 1 {
					t.Errorf("try %d: worktrees left:\n%s", i+1, wt)
				}
				if left := r.tmpLeft(); len(left) > 0 {
					t.Errorf("try %d: left in TMPDIR: %v", i+1, left)
				}
				if s := r.strays(); len(s) > 0 {
					t.Errorf("try %d: the agent's processes outlived moat: %v", i+1, s)
				}
				if t.Failed() {
					return
				}
				gitIn(t, repo, "branch", "-D", strings.TrimPrefix(branches[0], "refs/heads/"))
			}
		})
	}
}

// TestSupervisorSignalsCountAsOne sends SIGINT and SIGTERM together, as a
// supervisor may: one clean shutdown, the work kept.
func TestSupervisorSignalsCountAsOne(t *testing.T) {
	bin := moatBinary(t)
	repo := scratchRepo(t)
	r := startSigRun(t, bin, repo, "local", "", nil)
	r.cmd.Process.Signal(syscall.SIGINT)
	r.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	r.cmd.Process.Signal(syscall.SIGINT)
	if code := r.wait(); code != exitInterrupted {
		t.Fatalf("moat exited %d; want %d:\n%s", code, exitInterrupted, r.out.String())
	}
	text := r.out.String()
	if strings.Contains(text, "quitting at once") || strings.Count(text, "moat: interrupted;") != 1 {
		t.Fatalf("signals within a second were not taken as one:\n%s", text)
	}
	if got := gitIn(t, repo, "log", "-1", "--format=%s", "--branches=moat/*"); got != "the agent's work" {
		t.Errorf("the agent's commit is not on a kept branch: %q\n%s", got, text)
	}
	if left := r.tmpLeft(); len(left) > 0 {
		t.Errorf("left in TMPDIR: %v", left)
	}
}

// slowSyncOut makes the sync out take seconds: the agent leaves a file
// uncommitted whose clean filter sleeps, and sync out commits it.
const slowSyncOut = `printf 'slow.txt filter=slow\n' > .gitattributes && git config filter.slow.clean 'sleep 8; cat' && echo slow > slow.txt &&`

// TestSecondInterruptSaysWhatIsLeft interrupts twice, 1.2 s apart, while
// moat is still bringing the work out: moat quits at once, and what it
// prints is enough to bring the agent's commit home and to remove all
// it left, as the test does by running the printed commands.
func TestSecondInterruptSaysWhatIsLeft(t *testing.T) {
	bin := moatBinary(t)
	for _, kind := range []string{"local", "emulator"} {
		t.Run(kind, func(t *testing.T) {
			repo := scratchRepo(t)
			r := startSigRun(t, bin, repo, kind, slowSyncOut, nil)
			r.cmd.Process.Signal(syscall.SIGINT)
			time.Sleep(1200 * time.Millisecond)
			r.cmd.Process.Signal(syscall.SIGINT)
			start := time.Now()
			if code := r.wait(); code != exitInterrupted {
				t.Fatalf("moat exited %d; want %d:\n%s", code, exitInterrupted, r.out.String())
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("moat took %s to quit after the second interrupt", d)
			}
			text := r.out.String()
			if !strings.Contains(text, "interrupted again: quitting at once") {
				t.Fatalf("no quit at once:\n%s", text)
			}
			checkLeftoverReport(t, repo, r, text)
		})
	}
}

// TestShutdownBound: a shutdown longer than MOAT_SHUTDOWN_TIMEOUT ends
// like a second interrupt, saying what is left (with --json, in the
// result event too).
func TestShutdownBound(t *testing.T) {
	bin := moatBinary(t)
	repo := scratchRepo(t)
	r := startSigRun(t, bin, repo, "local", slowSyncOut, []string{"--json"}, shutdownBoundEnv+"=1s")
	r.cmd.Process.Signal(syscall.SIGTERM)
	start := time.Now()
	if code := r.wait(); code != exitInterrupted {
		t.Fatalf("moat exited %d; want %d:\n%s", code, exitInterrupted, r.out.String())
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("moat took %s to quit with a 1s shutdown bound", d)
	}
	text := r.out.String()
	if !strings.Contains(text, "still not done 1s after the interrupt") {
		t.Fatalf("the bound did not end the shutdown:\n%s", text)
	}
	// --json still ends with the result, listing what is left.
	if !regexp.MustCompile(`(?m)^\{"type":"result",.*"exit_code":130,.*"error_kind":"interrupted".*"kept":\[.*"what":"sandbox"`).MatchString(text) {
		t.Errorf("no result event listing the sandbox left:\n%s", text)
	}
	checkLeftoverReport(t, repo, r, text)
}

// checkLeftoverReport runs the commands of the report of a moat that quit
// at once while syncing out: the agent's commit comes home, and once the
// removal commands ran, nothing of the run is left.
func checkLeftoverReport(t *testing.T, repo string, r *sigRun, text string) {
	t.Helper()
	t.Logf("moat said:\n%s", text)
	if !strings.Contains(text, "moat: left behind") {
		t.Fatalf("no report of what is left:\n%s", text)
	}
	fetch := regexp.MustCompile(`(?m)^\s*(git -C \S+ -c transfer.fsckObjects=true fetch --no-tags .*)$`).FindStringSubmatch(text)
	if fetch == nil {
		t.Fatalf("no command to bring the commits home:\n%s", text)
	}
	if out, err := exec.Command("sh", "-c", fetch[1]).CombinedOutput(); err != nil {
		t.Fatalf("the printed recovery %q failed: %v\n%s\n%s", fetch[1], err, out, text)
	}
	if got := gitIn(t, repo, "log", "-1", "--format=%s", "--branches=moat/recovered-*"); got != "the agent's work" {
		t.Fatalf("the printed recovery did not bring the agent's commit: %q\n%s", got, text)
	}
	var removals []string
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:# remove (?:it|them): )?((?:rm -rf|git -C \S+ (?:for-each-ref|worktree remove)) .*)$`).FindAllStringSubmatch(text, -1) {
		removals = append(removals, m[1])
	}
	for _, c := range removals {
		if out, err := exec.Command("sh", "-c", c).CombinedOutput(); err != nil {
			t.Errorf("the printed removal %q failed: %v\n%s", c, err, out)
		}
	}
	if left := r.tmpLeft(); len(left) > 0 {
		t.Errorf("left in TMPDIR after the printed removals %q: %v\n%s", removals, left, text)
	}
	if refs := gitIn(t, repo, "for-each-ref", "--format=%(refname)", "refs/moat/"); refs != "" {
		t.Errorf("refs left after the printed removals: %s\n%s", refs, text)
	}
	if s := r.strays(); len(s) > 0 {
		t.Errorf("the agent's processes outlived moat: %v", s)
	}
}

// TestExecQuitAtOnceSaysWhatIsLeft: moat exec quitting at once (here at
// once after the first signal, with a shutdown bound of 1ns) prints the
// sandbox and temporary files it leaves, and the printed commands remove
// them.
func TestExecQuitAtOnceSaysWhatIsLeft(t *testing.T) {
	bin := moatBinary(t)
	repo := scratchRepo(t)
	tmp := t.TempDir()
	out := &execout.Capped{N: 1 << 20}
	cmd := exec.Command(bin, "exec", "--repo", repo, "--sandbox", "local", "--", "echo ready; exec sleep 3600")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, shutdownBoundEnv+"=1ns")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "ready") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the command never started:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	text := out.String()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("moat exec exited %d (%v); want %d:\n%s", code, err, exitInterrupted, text)
	}
	if !strings.Contains(text, "quitting at once") || !strings.Contains(text, "moat: left behind") {
		t.Fatalf("no report of what is left:\n%s", text)
	}
	t.Logf("moat said:\n%s", text)
	if !strings.Contains(text, "sandbox ") {
		t.Errorf("the report does not list the sandbox:\n%s", text)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:# remove it: )?(rm -rf -- .*)$`).FindAllStringSubmatch(text, -1) {
		if out, err := exec.Command("sh", "-c", m[1]).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", m[1], err, out)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("left in TMPDIR after the printed removals: %v\n%s", left, text)
	}
}

// TestCoreutilsTimeout runs `timeout 8 moat run …` itself, once per kind,
// on an agent that commits and sleeps: what TestTimeoutKeepsWork sends by
// hand, from the real thing.
func TestCoreutilsTimeout(t *testing.T) {
	timeoutBin, err := exec.LookPath("timeout")
	if err != nil {
		t.Skip("no coreutils timeout")
	}
	bin := moatBinary(t)
	for _, kind := range []string{"local", "emulator"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			repo := scratchRepo(t)
			tmp := t.TempDir()
			cmd := exec.Command(timeoutBin, "8", bin, "run", "--repo", repo, "--sandbox", kind, "--agent", "command", "--log-file", "-", "-p", "go",
				"--agent-cmd", `echo x > work.txt && git add work.txt && git commit -qm "the agent's work" && echo ready && exec sleep 3600`)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			out, _ := cmd.CombinedOutput()
			text := string(out)
			if code := cmd.ProcessState.ExitCode(); code != 124 || !strings.Contains(text, "| ready") {
				t.Fatalf("timeout exited %d (want 124, the time up while the agent slept):\n%s", code, text)
			}
			if strings.Contains(text, "quitting at once") {
				t.Fatalf("timeout's signals were taken as two interrupts:\n%s", text)
			}
			if got := gitIn(t, repo, "log", "-1", "--format=%s", "--branches=moat/*"); got != "the agent's work" {
				t.Errorf("the agent's commit is not on the kept branch: %q\n%s", got, text)
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("left in TMPDIR: %v", left)
			}
		})
	}
}

// TestHangupKeepsWork: SIGHUP (the terminal closed, the ssh session
// dropped) stops a run as SIGTERM does: the agent's commit kept, nothing
// left behind.
func TestHangupKeepsWork(t *testing.T) {
	bin := moatBinary(t)
	repo := scratchRepo(t)
	r := startSigRun(t, bin, repo, "local", "", nil)
	r.cmd.Process.Signal(syscall.SIGHUP)
	if code := r.wait(); code != exitInterrupted {
		t.Fatalf("moat exited %d; want %d:\n%s", code, exitInterrupted, r.out.String())
	}
	if got := gitIn(t, repo, "log", "-1", "--format=%s", "--branches=moat/*"); got != "the agent's work" {
		t.Errorf("the agent's commit is not on a kept branch: %q\n%s", got, r.out.String())
	}
	if left := r.tmpLeft(); len(left) > 0 {
		t.Errorf("left in TMPDIR: %v", left)
	}
	if s := r.strays(); len(s) > 0 {
		t.Errorf("the agent outlived moat: %v", s)
	}
}

// TestClosedPipeKeepsWork: moat run | head -1. The reader goes away at
// the first line; moat must not die of SIGPIPE mid-run but bring the work
// home as usual, and leave nothing behind.
func TestClosedPipeKeepsWork(t *testing.T) {
	bin := moatBinary(t)
	repo := scratchRepo(t)
	tmp := t.TempDir()
	cmd := exec.Command("sh", "-c", `"$0" run --repo "$1" --sandbox local --agent command -p go --log-file - --agent-cmd 'seq 1 20000 && echo work > work.txt && git add work.txt && git commit -qm "the agent'"'"'s work"' 2>"$2/stderr" | head -1`, bin, repo, t.TempDir())
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// head exits at once; moat goes on in the background of the pipeline
	// and the shell waits for it: the run is over here.
	if got := gitIn(t, repo, "log", "-1", "--format=%s"); got != "the agent's work" {
		t.Errorf("the agent's commit did not land: %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "moat-*")); len(left) > 0 {
		t.Errorf("left in TMPDIR: %v", left)
	}
}
