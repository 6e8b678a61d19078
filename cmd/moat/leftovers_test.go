package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
)

// TestKeptEmulatorWorkMovedOut: a VM of the in-process emulator, kept
// because its work could not be brought out, ends with moat. Its
// repository is moved to .moat/kept/<run-id>/ first, and the printed
// command brings the agent's commit home from there after the emulator
// is gone.
func TestKeptEmulatorWorkMovedOut(t *testing.T) {
	srv, err := exedevtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h, err := exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Exec(t.Context(), `git init -q && echo work > work.txt && git add work.txt && git -c user.name=A -c user.email=a@example.com commit -qm "the agent's work" && echo left > uncommitted.txt`, sandbox.ExecOptions{})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("%v %+v", err, r)
	}
	repo := scratchRepo(t)
	res := &moat.RunResult{RunID: "20261207-000000-abcdef", Sandbox: h,
		Kept: []moat.Kept{{What: "sandbox", Path: "vm:" + h.WorkDir(), Reason: "the agent's work could not be brought out of it", Fix: "# 1. in the sandbox ..."}}}
	saveEmulatorWork(res, srv, &project{Root: repo})
	srv.Close() // as moat's exit does

	dst := filepath.Join(repo, ".moat", "kept", res.RunID)
	if res.Sandbox != nil || len(res.Kept) != 1 || res.Kept[0].What != "directory" || res.Kept[0].Path != dst {
		t.Fatalf("the result does not point at the moved work: sandbox %v, kept %+v", res.Sandbox, res.Kept)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "uncommitted.txt")); err != nil || string(b) != "left\n" {
		t.Errorf("the uncommitted file did not come along: %q, %v", b, err)
	}
	fetch := regexp.MustCompile(`(?m)^git -C .* fetch --no-tags .*$`).FindString(res.Kept[0].Fix)
	if fetch == "" {
		t.Fatalf("no fetch command in %q", res.Kept[0].Fix)
	}
	if out, err := exec.Command("sh", "-c", fetch).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", fetch, err, out)
	}
	if got := gitIn(t, repo, "log", "-1", "--format=%s", "moat/recovered-"+res.RunID); got != "the agent's work" {
		t.Errorf("the printed command brought %q", got)
	}
}

// TestMoveTreeAcrossFileSystems moves a tree from /dev/shm (tmpfs) to the
// test's directory: a copy, symbolic links kept as links, then the source
// removed.
func TestMoveTreeAcrossFileSystems(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "moat-move-")
	if err != nil {
		t.Skip("no /dev/shm:", err)
	}
	defer os.RemoveAll(shm)
	src := filepath.Join(shm, "tree")
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "f"), []byte("x"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(src, "link"))
	dst := filepath.Join(t.TempDir(), "kept", "run")
	if err := moveTree(src, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "d", "f")); err != nil || string(b) != "x" {
		t.Errorf("file: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "link")); err != nil || l != "/etc/passwd" {
		t.Errorf("link: %q %v", l, err)
	}
	if _, err := os.Lstat(src); !os.IsNotExist(err) {
		t.Errorf("the source is still there: %v", err)
	}
}

// TestKeptEmulatorRunMovesWorkOut runs moat with the in-process emulator
// and an agent whose file is over --max-file-size: the work cannot come
// home, so the VM would be kept, but the emulator ends with moat. Its
// repository is moved to .moat/kept/<run-id>/ (hidden from git status),
// and the printed command fetches the agent's commit from there.
func TestKeptEmulatorRunMovesWorkOut(t *testing.T) {
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
	kept := regexp.MustCompile(`(?m)^kept directory (\S+/\.moat/kept/\S+): `).FindStringSubmatch(text)
	if kept == nil || strings.Contains(text, "kept sandbox") {
		t.Fatalf("the output does not point at the moved work:\n%s", text)
	}
	if _, err := os.Stat(filepath.Join(kept[1], "big.bin")); err != nil {
		t.Errorf("the work is not in %s: %v", kept[1], err)
	}
	if st := gitIn(t, repo, "status", "--porcelain"); st != "" {
		t.Errorf("git status shows moat's files: %s", st)
	}
	fetch := regexp.MustCompile(`(?m)git -C \S+ fetch --no-tags .*$`).FindString(text)
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
