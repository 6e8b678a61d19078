package command

import (
	"strings"
	"testing"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/agenttest"
)

func TestInvocation(t *testing.T) {
	a := New(Config{Command: "./agent.sh --fast"})
	inv, err := a.Invocation("do $(this)\nand that")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Cmd != "./agent.sh --fast" || inv.Stdin != "do $(this)\nand that" || inv.Env != nil {
		t.Errorf("Invocation = %+v", inv)
	}
	if _, err := a.Invocation(""); err != nil {
		t.Errorf("an empty prompt: %v", err)
	}
	if a.Name() != "command" || a.CredentialEnv() != nil {
		t.Errorf("Name %q, CredentialEnv %v", a.Name(), a.CredentialEnv())
	}
}

func TestEmptyCommand(t *testing.T) {
	for _, cmd := range []string{"", " \n\t"} {
		a := New(Config{Command: cmd})
		if _, err := a.Invocation("p"); err == nil || !strings.Contains(err.Error(), "Config.Command is empty") {
			t.Errorf("Invocation with command %q: %v", cmd, err)
		}
		if err := a.Ensure(t.Context(), nil, nil); err == nil {
			t.Errorf("Ensure with command %q succeeded", cmd)
		}
	}
	// Ensure looks at nothing in the sandbox: the script may not be there yet.
	if err := New(Config{Command: "./not-yet-there.sh"}).Ensure(t.Context(), nil, nil); err != nil {
		t.Errorf("Ensure: %v", err)
	}
}

func TestParse(t *testing.T) {
	p := New(Config{Command: "x"}).NewParser()
	var events []agent.Event
	for _, l := range []string{"hello", "", `{"type":"result","result":"not special"}`, "  indented"} {
		events = append(events, p.Parse(l)...)
	}
	want := "text \"hello\"\ntext \"\"\ntext \"{\\\"type\\\":\\\"result\\\",\\\"result\\\":\\\"not special\\\"}\"\ntext \"  indented\"\n"
	if got := agenttest.Render(events); got != want {
		t.Errorf("events:\n%s\nwant:\n%s", got, want)
	}
}

func TestRuns(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	agenttest.Exec(t, h, `printf '#!/bin/sh\necho "prompt: $(cat)"\necho\necho "in $PWD"\necho "to stderr" >&2\n' > agent.sh && chmod +x agent.sh`)
	events, res := agenttest.Run(t, h, New(Config{Command: "./agent.sh"}), "fix it")
	if res.ExitCode != 0 {
		t.Fatalf("exit code %d: %s", res.ExitCode, res.Stderr)
	}
	want := "text \"prompt: fix it\"\ntext \"\"\ntext \"in " + h.WorkDir() + "\"\n"
	if got := agenttest.Render(events); got != want {
		t.Errorf("events:\n%s\nwant:\n%s", got, want)
	}
}
