package copilot_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/copilot"
	"github.com/moatdev/moat/agent/internal/agente2e"
)

// TestRunEndToEnd runs moat.Run with GitHub Copilot CLI played by
// testdata/fake-copilot.sh, installed as copilot by the install command,
// on the local sandbox and the emulator. The prompt is over the kernel's
// limit for one argument (128 KiB): it goes on stdin, never on argv.
func TestRunEndToEnd(t *testing.T) {
	install := agente2e.Install(t, "copilot", "testdata/fake-copilot.sh")
	prompt := "Note this prompt.\nIt has $(two) lines and 'quotes'.\n" + strings.Repeat("a long prompt ", 20000)
	newAgent := func() agent.Agent {
		return copilot.New(copilot.Config{Model: "claude-sonnet-4.5", Effort: "high", InstallCommand: install})
	}
	agente2e.Run(t, newAgent, prompt, func(t *testing.T, r agente2e.Result) {
		res := r.Run
		if len(res.Commits) != 1 || res.Commits[0].Subject != "copilot: note the prompt" || res.Branch != "main" {
			t.Fatalf("result %+v", res)
		}
		if got := r.Git(t, "show", "main:PROMPT.txt"); got != strings.TrimSpace(prompt) {
			t.Errorf("PROMPT.txt on main has %d bytes, want the prompt's %d", len(got), len(prompt))
		}
		if res.CompletionSignal != moat.DefaultCompletionSignal || len(res.Iterations) != 1 || res.Iterations[0].SessionID != "fake-copilot-session" {
			t.Errorf("signal %q, iterations %+v", res.CompletionSignal, res.Iterations)
		}
		texts, tools := r.Texts()
		want := []string{"args: --output-format json --allow-all-tools --no-auto-update --model claude-sonnet-4.5 --reasoning-effort high", "done <promise>COMPLETE</promise>"}
		if !slices.Equal(texts, want) {
			t.Errorf("texts %q, want %q", texts, want)
		}
		if want := []string{"Bash(git commit -m note)"}; !slices.Equal(tools, want) {
			t.Errorf("tool calls %q, want %q", tools, want)
		}
		var status []string
		for _, e := range r.Events {
			if e.Kind == moat.EventStatus {
				status = append(status, e.Text)
			}
		}
		if s := strings.Join(status, "\n"); !strings.Contains(s, "installing GitHub Copilot CLI (the configured install command)…") || !strings.Contains(s, "installed GitHub Copilot CLI at ") {
			t.Errorf("no install progress in the status lines:\n%s", s)
		}
	})
}
