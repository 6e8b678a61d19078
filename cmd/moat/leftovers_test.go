package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestKeptEmulatorRunSavesWork runs moat with the in-process emulator and
// an agent whose file is over --max-file-size: the work cannot come home,
// so the VM would be kept, but the emulator ends with moat. The work is
// copied out to a bundle under .moat/kept/ (hidden from git status), and
// the printed commands fetch the agent's commit from it after moat exited.
func TestKeptEmulatorRunSavesWork(t *testing.T) {
	bin := moatBinary(t)
	repo := scratchRepo(t)
	cmd := exec.Command(bin, "run", "--repo", repo, "--sandbox", "emulator", "--agent", "command", "--max-file-size", "100KiB", "--log-file", "-",
		"--agent-cmd", `head -c 200000 /dev/urandom > big.bin && git add big.bin && git commit -qm "the agent's work"`, "-p", "go")
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	text := string(out)
	if cmd.ProcessState.ExitCode() != exitFailure {
		t.Fatalf("moat exited %v; want %d:\n%s", err, exitFailure, text)
	}
	t.Logf("moat said:\n%s", text)
	kept := regexp.MustCompile(`(?m)^kept bundle (\S+/\.moat/kept/\S+\.bundle): `).FindStringSubmatch(text)
	if kept == nil || strings.Contains(text, "kept sandbox") {
		t.Fatalf("the output does not point at the saved work:\n%s", text)
	}
	if _, err := os.Stat(kept[1]); err != nil {
		t.Errorf("the work is not in %s: %v", kept[1], err)
	}
	if st := gitIn(t, repo, "status", "--porcelain"); st != "" {
		t.Errorf("git status shows moat's files: %s", st)
	}
	fetch := regexp.MustCompile(`(?m)\S.*git bundle verify .* && git -c transfer.fsckObjects=true fetch .*$`).FindString(text)
	if fetch == "" {
		t.Fatalf("no fetch command:\n%s", text)
	}
	if out, err := exec.Command("sh", "-c", fetch).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", fetch, err, out)
	}
	if got := gitIn(t, repo, "log", "-1", "--format=%s", "--branches=moat/recovered-*"); got != "the agent's work" {
		t.Errorf("the printed command brought %q:\n%s", got, text)
	}
}

// TestKeptEmulatorWorkSurvivesFailedCopy: when the work of an emulator VM
// can neither come home nor be copied out (here the bundle's path is
// taken by a directory the agent made), the VM's files stay after moat
// exits, and the printed recover command brings the commit home.
func TestKeptEmulatorWorkSurvivesFailedCopy(t *testing.T) {
	bin := moatBinary(t)
	repo := scratchRepo(t)
	env := append(os.Environ(), "TMPDIR="+t.TempDir())
	cmd := exec.Command(bin, "run", "--repo", repo, "--sandbox", "emulator", "--agent", "command", "--max-file-size", "100KiB", "--log-file", "-",
		"--agent-cmd", `head -c 200000 /dev/urandom > big.bin && git add big.bin && git commit -qm "the agent's work" && mkdir .git/moat-work.bundle`, "-p", "go")
	cmd.Env = env
	out, _ := cmd.CombinedOutput()
	text := string(out)
	if cmd.ProcessState.ExitCode() != exitFailure {
		t.Fatalf("moat exited %d; want %d:\n%s", cmd.ProcessState.ExitCode(), exitFailure, text)
	}
	if strings.Contains(text, "work is lost") {
		t.Errorf("moat says the work is lost:\n%s", text)
	}
	recover := regexp.MustCompile(`(?m)moat sandbox recover --sandbox emulator (\S+)`).FindStringSubmatch(text)
	if recover == nil {
		t.Fatalf("no recover command:\n%s", text)
	}
	// recover takes the same limits, and says how to raise them.
	rc := exec.Command(bin, "sandbox", "recover", "--sandbox", "emulator", "--max-file-size", "100KiB", recover[1])
	rc.Dir, rc.Env = repo, env
	if out, err := rc.CombinedOutput(); err == nil || !strings.Contains(string(out), "over the limit of 100.0 KiB per file") {
		t.Fatalf("recover under the run's limit: %v\n%s", err, out)
	}
	rc = exec.Command(bin, "sandbox", "recover", "--sandbox", "emulator", recover[1])
	rc.Dir, rc.Env = repo, env
	if out, err := rc.CombinedOutput(); err != nil {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	if got := gitIn(t, repo, "log", "-1", "--format=%s", "--branches=moat/*"); got != "the agent's work" {
		t.Errorf("recover brought %q:\n%s", got, text)
	}
}
