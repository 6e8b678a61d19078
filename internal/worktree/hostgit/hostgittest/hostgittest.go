// Package hostgittest makes git hermetic for a package's tests.
package hostgittest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Main runs the tests with no system git config, an empty global config
// file that must still be empty at the end (moat must never write the
// user's global config), and a private HOME. Call it from TestMain.
func Main(m *testing.M) {
	if _, err := exec.LookPath("git"); err != nil {
		fmt.Fprintln(os.Stderr, "git is not installed")
		os.Exit(1)
	}
	home, err := os.MkdirTemp("", "moat-git-test-home-")
	if err != nil {
		panic(err)
	}
	global := filepath.Join(home, "gitconfig")
	if err := os.WriteFile(global, nil, 0o644); err != nil {
		panic(err)
	}
	os.Setenv("HOME", home)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	os.Setenv("GIT_CONFIG_GLOBAL", global)
	code := m.Run()
	if data, err := os.ReadFile(global); err != nil || len(data) != 0 {
		fmt.Fprintf(os.Stderr, "the global git config was written: %q %v\n", data, err)
		code = 1
	}
	os.RemoveAll(home)
	os.Exit(code)
}

// HookNames are all the hooks git knows (githooks(5)), for tests that plant
// every one of them.
var HookNames = []string{
	"applypatch-msg", "pre-applypatch", "post-applypatch", "pre-commit", "pre-merge-commit",
	"prepare-commit-msg", "commit-msg", "post-commit", "pre-rebase", "post-checkout", "post-merge",
	"pre-push", "pre-receive", "update", "proc-receive", "post-receive", "post-update",
	"reference-transaction", "push-to-checkout", "pre-auto-gc", "post-rewrite", "sendemail-validate",
	"fsmonitor-watchman", "p4-changelist", "p4-prepare-changelist", "p4-post-changelist",
	"p4-pre-submit", "post-index-change",
}

// Git runs the real git in dir (LC_ALL=C, no terminal prompt) and returns
// its output with surrounding space trimmed; any failure fails the test.
// It is plain git, not moat's hardened host git: tests use it to set up
// and inspect repositories.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("git %v in %s: %v\n%s%s", args, dir, err, out, stderr)
	}
	return strings.TrimSpace(string(out))
}

// EmptyRepo makes a repository in a temporary directory, on branch main
// with one empty commit, whose identity is set in its own config.
func EmptyRepo(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	Git(t, dir, "init", "-q", "-b", "main")
	Git(t, dir, "config", "user.name", "Test User")
	Git(t, dir, "config", "user.email", "test@example.com")
	Git(t, dir, "commit", "-q", "--allow-empty", "-m", "initial")
	return dir
}
