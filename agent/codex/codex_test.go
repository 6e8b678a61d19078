package codex

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/agenttest"
)

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			events := agenttest.ParseFile(t, New(Config{}).NewParser(), f)
			agenttest.Golden(t, strings.TrimSuffix(f, ".jsonl")+".golden", agenttest.Render(events))
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  string // rendered events
	}{
		{"noise", []string{"", "Reading prompt from stdin...", `["thread.started"]`, `{"type":"thread.started"`, `{"type":"turn.started"}`,
			`{"type":"item.updated","item":{"id":"i","type":"command_execution","command":"ls"}}`, `{"type":"mystery"}`, `{}`}, ""},
		{"thread", []string{` {"type":"thread.started","thread_id":"t1"}`, `{"type":"thread.started","thread_id":""}`}, "session_id t1\n"},
		{"messages", []string{
			`{"type":"item.started","item":{"id":"m0","type":"agent_message","text":"partial"}}`,
			`{"type":"item.completed","item":{"id":"m1","type":"agent_message","text":"first"}}`,
			`{"type":"item.completed","item":{"id":"m2","type":"agent_message","text":""}}`,
			`{"type":"item.completed","item":{"id":"r","type":"reasoning","text":"thinking"}}`,
		}, "text \"first\"\nresult \"first\"\nresult \"\"\n"},
		{"commands by id", []string{
			`{"type":"item.started","item":{"id":"c1","type":"command_execution","command":"ls"}}`,
			`{"type":"item.completed","item":{"id":"c1","type":"command_execution","command":"ls","exit_code":0}}`,
			`{"type":"item.completed","item":{"id":"c2","type":"command_execution","command":"only completed"}}`,
			`{"type":"item.started","item":{"type":"command_execution","command":"no id"}}`,
			`{"type":"item.completed","item":{"type":"command_execution","command":"no id"}}`,
			`{"type":"item.started","item":{"id":"c1","type":"command_execution","command":"id reused"}}`,
		}, "tool_call Bash \"ls\"\ntool_call Bash \"only completed\"\ntool_call Bash \"no id\"\ntool_call Bash \"id reused\"\n"},
		{"other tools", []string{
			`{"type":"item.completed","item":{"type":"file_change","changes":[{"path":"a.go","kind":"update"},{"path":"","kind":"add"},{"path":"b.go","kind":"add"}]}}`,
			`{"type":"item.started","item":{"id":"w","type":"web_search","query":"q1"}}`,
			`{"type":"item.completed","item":{"id":"w","type":"web_search","query":"q1"}}`,
			`{"type":"item.started","item":{"id":"w2","type":"web_search","query":""}}`,
			`{"type":"item.completed","item":{"id":"w2","type":"web_search","query":""}}`,
			`{"type":"item.started","item":{"id":"m","type":"mcp_tool_call","server":"gh","tool":"list"}}`,
			`{"type":"item.started","item":{"id":"t","type":"todo_list","items":[]}}`,
			`{"type":"item.completed","item":{"id":"e","type":"error","message":"not fatal"}}`,
			`{"type":"item.started","item":{"id":"x","type":"collab_tool_call"}}`,
		}, "tool_call Edit \"a.go, b.go\"\ntool_call WebSearch \"q1\"\ntool_call WebSearch \"\"\ntool_call mcp__gh__list \"\"\n"},
		{"usage", []string{
			`{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":60,"output_tokens":7}}`,
			`{"type":"turn.completed","usage":{"input_tokens":5,"cached_input_tokens":9,"output_tokens":1}}`,
			`{"type":"turn.completed"}`,
			`{"type":"turn.completed","usage":null}`,
			`{"type":"turn.completed","usage":"lots"}`,
		}, "usage input=40 cache_creation=0 cache_read=60 output=7\nusage input=0 cache_creation=0 cache_read=9 output=1\n"},
		{"errors", []string{
			`{"type":"error","message":"Reconnecting... 1/5"}`,
			`{"type":"error","error":"plain"}`,
			`{"type":"error","error":{"data":{"message":"nested"}}}`,
			`{"type":"error"}`,
			`{"type":"turn.failed","error":{"message":"401 Unauthorized"}}`,
			`{"type":"turn.failed","error":{}}`,
		}, `error "Reconnecting... 1/5"
error "plain"
error "nested"
error "Codex reported an error"
error "401 Unauthorized"
error "Codex: the turn failed"
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Config{}).NewParser()
			var events []agent.Event
			for _, l := range tc.lines {
				events = append(events, p.Parse(l)...)
			}
			if got := agenttest.Render(events); got != tc.want {
				t.Errorf("events:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	// A zero Parser works too.
	var p Parser
	if got := agenttest.Render(p.Parse(`{"type":"item.started","item":{"id":"c","type":"command_execution","command":"ls"}}`)); got != "tool_call Bash \"ls\"\n" {
		t.Errorf("zero Parser: %s", got)
	}
}

func TestInvocation(t *testing.T) {
	const prompt = "Fix the bug in $(whoami) `id` 'quoted'\nsecond line"
	const base = `PATH="$PATH:$HOME/.local/bin" codex exec --json --dangerously-bypass-approvals-and-sandbox`
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, base + ` -`},
		{Config{Model: "gpt-5.4", Effort: "high"}, base + ` -m gpt-5.4 -c 'model_reasoning_effort="high"' -`},
		{Config{Model: "o'brien model", Effort: `x"y\z'w`}, base + ` -m 'o'\''brien model' -c 'model_reasoning_effort="x\"y\\z'\''w"' -`},
		{Config{Effort: "tab\there"}, base + ` -c 'model_reasoning_effort="tab\u0009here"' -`},
		{Config{Binary: "/opt/my codex"}, `PATH="$PATH:$HOME/.local/bin" '/opt/my codex' exec --json --dangerously-bypass-approvals-and-sandbox -`},
	} {
		inv, err := New(tc.cfg).Invocation(prompt)
		if err != nil {
			t.Fatal(err)
		}
		if inv.Cmd != tc.want {
			t.Errorf("Cmd for %+v:\n%s\nwant\n%s", tc.cfg, inv.Cmd, tc.want)
		}
		if inv.Stdin != prompt {
			t.Errorf("Stdin = %q, want the prompt", inv.Stdin)
		}
		if strings.Contains(inv.Cmd, "Fix the bug") || strings.Contains(inv.Cmd, "whoami") {
			t.Errorf("the prompt is on the command line: %s", inv.Cmd)
		}
		if len(inv.Env) != 0 {
			t.Errorf("Env = %v", inv.Env)
		}
	}
	for _, tc := range []struct {
		cfg    Config
		prompt string
		want   string
	}{
		{Config{}, "\t", "prompt is empty"},
		{Config{Model: "-m"}, "p", `Model "-m" starts with "-"`},
		{Config{Effort: "--x"}, "p", `Effort "--x" starts with "-"`},
		{Config{Effort: "a\nb"}, "p", "line break"},
	} {
		if _, err := New(tc.cfg).Invocation(tc.prompt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Invocation(%+v, %q) error %v, want one with %q", tc.cfg, tc.prompt, err, tc.want)
		}
	}
}

// TestInvocationArguments checks that the shell hands codex exactly the
// intended arguments, whatever the quoting.
func TestInvocationArguments(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	agenttest.Exec(t, h, `mkdir -p "$HOME/.local/bin" && cat > "$HOME/.local/bin/moat-args-codex" <<'EOF'
#!/bin/sh
for a; do printf '{"type":"item.completed","item":{"type":"agent_message","text":"%s"}}\n' "$(printf '%s' "$a" | sed 's/\\/\\\\/g; s/"/\\"/g')"; done
printf '{"type":"item.completed","item":{"type":"agent_message","text":"stdin=%s"}}\n' "$(cat)"
EOF
chmod +x "$HOME/.local/bin/moat-args-codex"`)
	a := New(Config{Binary: "moat-args-codex", Model: "o'brien $HOME", Effort: `x"y\z`})
	events, res := agenttest.Run(t, h, a, "the prompt")
	if res.ExitCode != 0 {
		t.Fatalf("exit code %d: %s", res.ExitCode, res.Stderr)
	}
	var args []string
	for _, e := range events {
		if e.Kind == agent.EventResult {
			args = append(args, e.Text)
		}
	}
	want := []string{"exec", "--json", "--dangerously-bypass-approvals-and-sandbox", "-m", "o'brien $HOME", "-c", `model_reasoning_effort="x\"y\\z"`, "-", "stdin=the prompt"}
	if !slices.Equal(args, want) {
		t.Errorf("codex got\n%q\nwant\n%q", args, want)
	}
}

func TestIdentity(t *testing.T) {
	a := New(Config{})
	if a.Name() != "codex" {
		t.Errorf("Name() = %q", a.Name())
	}
	if got := a.CredentialEnv(); !slices.Equal(got, []string{"OPENAI_API_KEY", "CODEX_API_KEY"}) {
		t.Errorf("CredentialEnv() = %v", got)
	}
}

func TestEnsureInstallsThenRuns(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	install := `mkdir -p "$HOME/.local/bin"
cat > "$HOME/.local/bin/moat-test-codex" <<'EOF'
#!/bin/sh
if [ "$1" = --version ]; then echo "codex-cli 0.169.0"; exit 0; fi
prompt=$(cat)
echo '{"type":"thread.started","thread_id":"fake-thread"}'
echo '{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"make test","status":"in_progress"}}'
printf '{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"prompt=%s"}}\n' "$prompt"
echo '{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":4,"output_tokens":3}}'
EOF
chmod +x "$HOME/.local/bin/moat-test-codex"`
	a := New(Config{Binary: "moat-test-codex", InstallCommand: install})
	var progress []string
	if err := a.Ensure(agenttest.Context(t), h, func(l string) { progress = append(progress, l) }); err != nil {
		t.Fatal(err)
	}
	if len(progress) != 2 || progress[0] != "installing Codex (the configured install command)…" ||
		!strings.HasSuffix(progress[1], "/.local/bin/moat-test-codex: codex-cli 0.169.0") {
		t.Errorf("progress:\n%s", strings.Join(progress, "\n"))
	}
	events, res := agenttest.Run(t, h, a, "fix it")
	if res.ExitCode != 0 {
		t.Fatalf("exit code %d: %s", res.ExitCode, res.Stderr)
	}
	want := `session_id fake-thread
tool_call Bash "make test"
text "prompt=fix it"
result "prompt=fix it"
usage input=6 cache_creation=0 cache_read=4 output=3
`
	if got := agenttest.Render(events); got != want {
		t.Errorf("events:\n%s\nwant:\n%s", got, want)
	}
}

func TestEnsureWithoutNPM(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	err := New(Config{Binary: "moat-test-codex", NPM: "moat-no-such-npm"}).Ensure(agenttest.Context(t), h, nil)
	if err == nil || !strings.Contains(err.Error(), "Codex (moat-test-codex) is not installed in the sandbox, and moat installs it with npm") {
		t.Errorf("Ensure: %v", err)
	}
}

func TestUnwrapShell(t *testing.T) {
	for cmd, want := range map[string]string{
		"/bin/bash -lc 'rg --files | head -50'":      "rg --files | head -50",
		"bash -lc 'echo '\\''hi'\\'' > x'":           "echo 'hi' > x",
		`/usr/bin/zsh -c "git status"`:               "git status",
		`/bin/sh -c "echo $HOME"`:                    `/bin/sh -c "echo $HOME"`,
		"/bin/bash -lc 'a' 'b'":                      "/bin/bash -lc 'a' 'b'",
		"/bin/bash -lc ls":                           "/bin/bash -lc ls",
		"/bin/bash -x 'ls'":                          "/bin/bash -x 'ls'",
		"python3 -c 'print(1)'":                      "python3 -c 'print(1)'",
		"ls -la":                                     "ls -la",
		"":                                           "",
		"/bin/bash -lc ''":                           "",
		"/bin/bash -lc \"git commit -m 'Carry'\"":    "git commit -m 'Carry'",
		"/bin/bash -lc 'git commit -m \"Carry it\"'": `git commit -m "Carry it"`,
	} {
		if got := unwrapShell(cmd); got != want {
			t.Errorf("unwrapShell(%q) = %q, want %q", cmd, got, want)
		}
	}
}
