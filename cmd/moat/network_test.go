package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/moatdev/moat/internal/testenv"
)

// TestLocalWithoutStackRefuses: with bubblewrap but no slirp4netns, a local
// sandbox's default network (isolated) cannot be given: moat run and moat
// exec stop before anything runs and say what to do, and moat doctor
// fails the containment check. (That host and none need no slirp4netns is
// tested in sandbox/local, where the stack's path can be set.)
func TestLocalWithoutStackRefuses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("bubblewrap is Linux only")
	}
	bwrap := testenv.RequireBinary(t, "bwrap", "bubblewrap")
	git := testenv.RequireBinary(t, "git", "git")
	// A PATH with bwrap and git and no slirp4netns; commands in the
	// sandbox run /bin/sh by its absolute path.
	bin := t.TempDir()
	for name, target := range map[string]string{"bwrap": bwrap, "git": git} {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	repo := docRepo(t, "", 0)
	c := exec.Command(git, "-C", repo, "commit", "-q", "--allow-empty", "-m", "initial")
	c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("git: %v %s", err, out)
	}
	t.Setenv("PATH", bin)

	_, errOut, code := sbxRun(t, "run", "--sandbox", "local", "--agent", "command", "--agent-cmd", "true", "-p", "go")
	if code != 1 {
		t.Errorf("run: exit %d, want 1", code)
	}
	wantIn(t, "run's stderr", errOut, "network isolated needs slirp4netns", "apt install slirp4netns", "none", "host")
	wantNotIn(t, "run's stderr", errOut, "creating the sandbox")

	_, errOut, code = sbxRun(t, "exec", "--sandbox", "local", "--", "echo", "ran")
	if code != exitExecFailed {
		t.Errorf("exec: exit %d, want %d", code, exitExecFailed)
	}
	wantIn(t, "exec's stderr", errOut, "needs slirp4netns")

	out, _, code := sbxRun(t, "doctor", "--sandbox", "local", "--agent", "command")
	if code != 1 {
		t.Errorf("doctor: exit %d, want 1", code)
	}
	wantIn(t, "containment", wantStatus(t, out, "containment", "FAIL"), "needs slirp4netns", "apt install slirp4netns")

}
