// Package agente2e runs an agent end to end through moat.Run, played by a
// fake CLI, on the local sandbox and on the exe.dev emulator: the way each
// agent package proves that its command line, its install and its parser
// work together with the rest of moat.
package agente2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
	"github.com/moatdev/moat/sandbox/local"
)

// Install returns a shell command that installs the script in the file at
// path (read on the host) as $HOME/.local/bin/name, the way an agent's
// InstallCommand would, so that Ensure finds it and invocations run it.
func Install(t testing.TB, name, path string) string {
	t.Helper()
	script, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const eof = "MOAT_FAKE_CLI_EOF"
	if strings.Contains(string(script), eof) {
		t.Fatalf("%s holds %s", path, eof)
	}
	return `mkdir -p "$HOME/.local/bin" && cat > "$HOME/.local/bin/` + name + `" <<'` + eof + "'\n" +
		strings.TrimSuffix(string(script), "\n") + "\n" + eof + "\n" +
		`chmod +x "$HOME/.local/bin/` + name + `" && echo "installed fake ` + name + `"`
}

// Result is what one end-to-end run gave.
type Result struct {
	Target string // "local" or "emulator"
	Repo   string // the host repository, on main
	Run    *moat.RunResult
	Events []moat.Event // text, tool calls, warnings and status, in order
}

// Git runs git in r.Repo and returns its trimmed output.
func (r Result) Git(t testing.TB, args ...string) string {
	t.Helper()
	return git(t, r.Repo, args...)
}

// Texts returns the texts the agent said, and its tool calls as
// "Tool(arg)".
func (r Result) Texts() (texts, tools []string) {
	for _, e := range r.Events {
		switch e.Kind {
		case moat.EventText:
			texts = append(texts, e.Text)
		case moat.EventToolCall:
			tools = append(tools, e.Tool+"("+e.ToolArg+")")
		}
	}
	return texts, tools
}

// Run runs newAgent's agent on prompt with moat.Run, once in a local
// sandbox and once in a VM of the exe.dev emulator, each in a fresh
// repository (main, with a README), and hands each result to check. The
// run must succeed and leave no sandbox behind.
func Run(t *testing.T, newAgent func() agent.Agent, prompt string, check func(t *testing.T, r Result)) {
	t.Helper()
	emu := exedevtest.NewServer(t)
	for _, tg := range []struct {
		name     string
		provider sandbox.Provider
		leftover func() []string
	}{
		{"local", local.New(local.Config{}), func() []string { return nil }},
		{"emulator", exedev.New(emu.Config()), emu.VMs},
	} {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			repo := newRepo(t)
			var (
				mu     sync.Mutex
				events []moat.Event
			)
			res, err := moat.Run(t.Context(), moat.RunOptions{
				Repo: repo, Sandbox: tg.provider, Agent: newAgent(), Prompt: prompt, LogFile: "-",
				OnEvent: func(e moat.Event) {
					mu.Lock()
					defer mu.Unlock()
					events = append(events, e)
				},
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				var log strings.Builder
				for _, e := range events {
					log.WriteString(string(e.Kind) + " " + e.Text + "\n")
				}
				t.Fatalf("Run: %v\nevents:\n%s", err, log.String())
			}
			if left := tg.leftover(); len(left) > 0 {
				t.Errorf("sandboxes left behind: %v", left)
			}
			check(t, Result{Target: tg.name, Repo: repo, Run: res, Events: events})
		})
	}
}

func newRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	git(t, dir, "config", "user.name", "Host User")
	git(t, dir, "config", "user.email", "host@example.com")
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "initial")
	return dir
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
