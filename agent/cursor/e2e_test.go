package cursor_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/cursor"
	"github.com/moatdev/moat/agent/internal/agente2e"
)

// TestRunEndToEnd runs moat.Run with the Cursor CLI played by
// testdata/fake-cursor-agent.sh, installed as cursor-agent by the install
// command, on the local sandbox and the emulator.
func TestRunEndToEnd(t *testing.T) {
	install := agente2e.Install(t, "cursor-agent", "testdata/fake-cursor-agent.sh")
	const prompt = "Note this prompt.\nIt has $(two) lines and 'quotes'."
	newAgent := func() agent.Agent {
		return cursor.New(cursor.Config{Model: "composer-2", InstallCommand: install})
	}
	agente2e.Run(t, newAgent, prompt, func(t *testing.T, r agente2e.Result) {
		res := r.Run
		if len(res.Commits) != 1 || res.Commits[0].Subject != "cursor: note the prompt" || res.Branch != "main" {
			t.Fatalf("result %+v", res)
		}
		if got := r.Git(t, "show", "main:PROMPT.txt"); got != prompt {
			t.Errorf("PROMPT.txt on main = %q, want the prompt", got)
		}
		if res.CompletionSignal != moat.DefaultCompletionSignal || len(res.Iterations) != 1 || res.Iterations[0].SessionID != "fake-cursor-session" {
			t.Errorf("signal %q, iterations %+v", res.CompletionSignal, res.Iterations)
		}
		if u := res.Iterations[0].Usage; u == nil || *u != (agent.Usage{InputTokens: 100, OutputTokens: 20, CacheReadInputTokens: 7, CacheCreationInputTokens: 3}) {
			t.Errorf("usage %+v", u)
		}
		texts, tools := r.Texts()
		want := []string{"args: --print --output-format stream-json --force --trust --model composer-2", "done <promise>COMPLETE</promise>"}
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
		if s := strings.Join(status, "\n"); !strings.Contains(s, "installing Cursor CLI (the configured install command)…") || !strings.Contains(s, "installed Cursor CLI at ") {
			t.Errorf("no install progress in the status lines:\n%s", s)
		}
	})
}
