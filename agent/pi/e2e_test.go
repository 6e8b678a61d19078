package pi_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/agente2e"
	"github.com/moatdev/moat/agent/pi"
)

// TestRunEndToEnd runs moat.Run with pi played by testdata/fake-pi.sh,
// installed as pi by the install command, on the local sandbox and the
// emulator.
func TestRunEndToEnd(t *testing.T) {
	install := agente2e.Install(t, "pi", "testdata/fake-pi.sh")
	const prompt = "Note this prompt.\nIt has $(two) lines and 'quotes'."
	newAgent := func() agent.Agent {
		return pi.New(pi.Config{Model: "claude-sonnet-4-6", Thinking: "low", InstallCommand: install})
	}
	agente2e.Run(t, newAgent, prompt, func(t *testing.T, r agente2e.Result) {
		res := r.Run
		if len(res.Commits) != 1 || res.Commits[0].Subject != "pi: note the prompt" || res.Branch != "main" {
			t.Fatalf("result %+v", res)
		}
		if got := r.Git(t, "show", "main:PROMPT.txt"); got != prompt {
			t.Errorf("PROMPT.txt on main = %q, want the prompt", got)
		}
		if res.CompletionSignal != moat.DefaultCompletionSignal || len(res.Iterations) != 1 || res.Iterations[0].SessionID != "fake-pi-session" {
			t.Errorf("signal %q, iterations %+v", res.CompletionSignal, res.Iterations)
		}
		if u := res.Iterations[0].Usage; u == nil || *u != (agent.Usage{InputTokens: 100, OutputTokens: 20, CacheReadInputTokens: 7, CacheCreationInputTokens: 3}) {
			t.Errorf("usage %+v", u)
		}
		texts, tools := r.Texts()
		if want := []string{"args: --print --mode json --model claude-sonnet-4-6 --thinking low", "done <promise>COMPLETE</promise>"}; !slices.Equal(texts, want) {
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
		if s := strings.Join(status, "\n"); !strings.Contains(s, "installing pi (the configured install command)…") || !strings.Contains(s, "installed pi at ") {
			t.Errorf("no install progress in the status lines:\n%s", s)
		}
	})
}
