package claude

import (
	"os/exec"
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
	const init = `{"type":"system","subtype":"init","session_id":"s1"}`
	for _, tc := range []struct {
		name  string
		lines []string
		want  string // rendered events
	}{
		{"noise", []string{"", "   ", "Warning: something", `[{"type":"assistant"}]`, `{"type":"assistant"`, `{"type":"mystery","session_id":"x"}`, `{}`, `42`}, ""},
		{"init with leading space", []string{"  " + init}, "session_id s1\n"},
		{"init without a session", []string{`{"type":"system","subtype":"init"}`}, ""},
		{"other system lines", []string{`{"type":"system","subtype":"compact_boundary","session_id":"s2"}`}, ""},
		{"text blocks joined, split by tool calls", []string{`{"type":"assistant","message":{"content":[
			{"type":"text","text":"a"},{"type":"text","text":"b"},{"type":"thinking","thinking":"hmm"},{"type":"text","text":"c"},
			{"type":"tool_use","name":"Bash","input":{"command":"ls"}},
			{"type":"text","text":""},
			{"type":"text","text":"d"}]}}`},
			"text \"abc\"\ntool_call Bash \"ls\"\ntext \"d\"\n"},
		{"tool arguments", []string{`{"type":"assistant","message":{"content":[
			{"type":"tool_use","name":"Read","input":{"file_path":"/a","limit":5}},
			{"type":"tool_use","name":"Write","input":{"file_path":"/b","content":"x"}},
			{"type":"tool_use","name":"Edit","input":{"file_path":"/c"}},
			{"type":"tool_use","name":"MultiEdit","input":{"file_path":"/d"}},
			{"type":"tool_use","name":"NotebookEdit","input":{"notebook_path":"/e.ipynb"}},
			{"type":"tool_use","name":"Grep","input":{"pattern":"fo+"}},
			{"type":"tool_use","name":"Glob","input":{"pattern":"*.go"}},
			{"type":"tool_use","name":"WebSearch","input":{"query":"q"}},
			{"type":"tool_use","name":"WebFetch","input":{"url":"https://x"}},
			{"type":"tool_use","name":"Agent","input":{"description":"d1"}},
			{"type":"tool_use","name":"Task","input":{"description":"d2"}},
			{"type":"tool_use","name":"TodoWrite","input":{"todos":[]}},
			{"type":"tool_use","name":"mcp__x__y","input":{"command":"not shown"}},
			{"type":"tool_use","name":"Bash","input":{"command":42}},
			{"type":"tool_use","name":"Bash","input":"not an object"},
			{"type":"tool_use","name":"Bash"},
			{"type":"tool_use","input":{"command":"no name"}}]}}`},
			`tool_call Read "/a"
tool_call Write "/b"
tool_call Edit "/c"
tool_call MultiEdit "/d"
tool_call NotebookEdit "/e.ipynb"
tool_call Grep "fo+"
tool_call Glob "*.go"
tool_call WebSearch "q"
tool_call WebFetch "https://x"
tool_call Agent "d1"
tool_call Task "d2"
tool_call TodoWrite ""
tool_call mcp__x__y ""
tool_call Bash ""
tool_call Bash ""
tool_call Bash ""
`},
		{"usage", []string{
			`{"type":"assistant","message":{"content":[],"usage":{"input_tokens":1,"cache_creation_input_tokens":2,"cache_read_input_tokens":3,"output_tokens":4}},"parent_tool_use_id":null}`,
			`{"type":"assistant","message":{"content":[],"usage":{"input_tokens":9}},"parent_tool_use_id":"toolu_1"}`,
			`{"type":"assistant","message":{"content":[],"usage":null}}`,
			`{"type":"assistant","message":{"content":[]}}`,
			`{"type":"assistant","message":{"content":"not blocks","usage":{"input_tokens":9}}}`,
		}, "usage input=1 cache_creation=2 cache_read=3 output=4\n"},
		{"result", []string{init, `{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s1","usage":{"input_tokens":5,"output_tokens":6}}`},
			"session_id s1\nusage input=5 cache_creation=0 cache_read=0 output=6\nresult \"done\"\n"},
		{"empty result", []string{`{"type":"result","subtype":"success","result":""}`}, "result \"\"\n"},
		{"result that is not a string", []string{`{"type":"result","subtype":"success","result":{"text":"x"}}`, `{"type":"result","subtype":"success"}`}, ""},
		{"result with a new session", []string{init, `{"type":"result","result":"ok","session_id":"s2"}`}, "session_id s1\nsession_id s2\nresult \"ok\"\n"},
		{"error with text", []string{`{"type":"result","subtype":"success","is_error":true,"result":"Invalid API key · Please run /login"}`},
			"error \"Invalid API key · Please run /login\"\n"},
		{"error list", []string{`{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["", "boom","bang"]}`}, "error \"boom; bang\"\n"},
		{"error kinds", []string{
			`{"type":"result","subtype":"error_max_turns","is_error":true}`,
			`{"type":"result","subtype":"error_during_execution","is_error":false}`,
			`{"type":"result","subtype":"error_max_budget_usd","is_error":true,"result":"  "}`,
			`{"type":"result","subtype":"error_new_kind"}`,
			`{"type":"result","is_error":true}`,
		}, `error "Claude Code stopped: it reached the maximum number of turns (error_max_turns)"
error "Claude Code failed during execution (error_during_execution)"
error "Claude Code stopped: it reached its spending limit (error_max_budget_usd)"
error "Claude Code reported an error (error_new_kind)"
error "Claude Code reported an error"
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Config{}).NewParser()
			var events []agent.Event
			for _, l := range tc.lines {
				events = append(events, p.Parse(strings.ReplaceAll(l, "\n", ""))...)
			}
			if got := agenttest.Render(events); got != tc.want {
				t.Errorf("events:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestInvocation(t *testing.T) {
	const prompt = "Fix the bug in $(whoami) `id` 'quoted' \"double\"\nsecond line"
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, `PATH="$PATH:$HOME/.local/bin" claude --print --verbose --output-format stream-json --dangerously-skip-permissions`},
		{Config{Model: "opus", Effort: "high"}, `PATH="$PATH:$HOME/.local/bin" claude --print --verbose --output-format stream-json --dangerously-skip-permissions --model opus --effort high`},
		{Config{Model: "claude-opus-4-8[1m]", Effort: "it's max"},
			`PATH="$PATH:$HOME/.local/bin" claude --print --verbose --output-format stream-json --dangerously-skip-permissions --model 'claude-opus-4-8[1m]' --effort 'it'\''s max'`},
		{Config{Binary: "/opt/claude code/bin/claude"}, `PATH="$PATH:$HOME/.local/bin" '/opt/claude code/bin/claude' --print --verbose --output-format stream-json --dangerously-skip-permissions`},
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
		if len(inv.Env) != 1 || inv.Env["IS_SANDBOX"] != "1" {
			t.Errorf("Env = %v, want IS_SANDBOX=1", inv.Env)
		}
	}
	for _, tc := range []struct {
		cfg    Config
		prompt string
		want   string
	}{
		{Config{}, " \n", "prompt is empty"},
		{Config{Model: "--help"}, "p", `Model "--help" starts with "-"`},
		{Config{Effort: "-x"}, "p", `Effort "-x" starts with "-"`},
		{Config{Model: "a\x00b"}, "p", "NUL"},
	} {
		if _, err := New(tc.cfg).Invocation(tc.prompt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Invocation(%+v, %q) error %v, want one with %q", tc.cfg, tc.prompt, err, tc.want)
		}
	}
}

func TestIdentity(t *testing.T) {
	a := New(Config{})
	if a.Name() != "claude" {
		t.Errorf("Name() = %q", a.Name())
	}
	if got := a.CredentialEnv(); !slices.Equal(got, []string{"CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY"}) {
		t.Errorf("CredentialEnv() = %v", got)
	}
}

// fakeClaude is an install command that puts a fake claude, named bin, into
// $HOME/.local/bin. The fake prints stream-json that echoes its arguments,
// its prompt and IS_SANDBOX.
func fakeClaude(bin string) string {
	return `mkdir -p "$HOME/.local/bin"
cat > "$HOME/.local/bin/` + bin + `" <<'EOF'
#!/bin/sh
if [ "$1" = --version ]; then echo "2.1.332 (Claude Code)"; exit 0; fi
prompt=$(cat)
echo '{"type":"system","subtype":"init","session_id":"fake-session"}'
echo "some noise"
echo '{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{"command":"make test"}}]},"parent_tool_use_id":null}'
printf '{"type":"result","subtype":"success","is_error":false,"result":"args=%s|prompt=%s|sandbox=%s","session_id":"fake-session"}\n' "$*" "$prompt" "$IS_SANDBOX"
EOF
chmod +x "$HOME/.local/bin/` + bin + `"
echo "added 1 package in 0s"`
}

func TestEnsureInstallsThenRuns(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	a := New(Config{Binary: "moat-test-claude", InstallCommand: fakeClaude("moat-test-claude"), Model: "opus"})
	var progress []string
	if err := a.Ensure(agenttest.Context(t), h, func(l string) { progress = append(progress, l) }); err != nil {
		t.Fatal(err)
	}
	if len(progress) != 3 || progress[0] != "installing Claude Code (the configured install command)…" || progress[1] != "  added 1 package in 0s" ||
		!strings.HasPrefix(progress[2], "installed Claude Code at ") || !strings.HasSuffix(progress[2], "/.local/bin/moat-test-claude: 2.1.332 (Claude Code)") {
		t.Errorf("progress:\n%s", strings.Join(progress, "\n"))
	}

	events, res := agenttest.Run(t, h, a, "fix it")
	if res.ExitCode != 0 {
		t.Fatalf("exit code %d: %s", res.ExitCode, res.Stderr)
	}
	want := `session_id fake-session
tool_call Bash "make test"
result "args=--print --verbose --output-format stream-json --dangerously-skip-permissions --model opus|prompt=fix it|sandbox=1"
`
	if got := agenttest.Render(events); got != want {
		t.Errorf("events:\n%s\nwant:\n%s", got, want)
	}

	// Found, not installed again.
	progress = nil
	if err := a.Ensure(agenttest.Context(t), h, func(l string) { progress = append(progress, l) }); err != nil {
		t.Fatal(err)
	}
	if len(progress) != 1 || !strings.HasPrefix(progress[0], "using Claude Code at ") {
		t.Errorf("progress of the second Ensure: %q", progress)
	}
}

func TestEnsureWithoutNPM(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	err := New(Config{Binary: "moat-test-claude", NPM: "moat-no-such-npm", NativeInstallCommand: "none"}).Ensure(agenttest.Context(t), h, nil)
	if err == nil || !strings.Contains(err.Error(), "Claude Code (moat-test-claude) is not installed in the sandbox, and moat installs it with npm") ||
		!strings.Contains(err.Error(), "npm (moat-no-such-npm)") {
		t.Errorf("Ensure: %v", err)
	}
}

// Without npm but with curl (a fresh exe.dev VM), Ensure runs Claude Code's
// own installer.
func TestEnsureNativeInstallerWithoutNPM(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the native path needs curl in the sandbox, and the local sandbox shares the host's tools")
	}
	h := agenttest.Sandbox(t)
	a := New(Config{Binary: "moat-test-claude", NPM: "moat-no-such-npm", NativeInstallCommand: fakeClaude("moat-test-claude")})
	var progress []string
	if err := a.Ensure(agenttest.Context(t), h, func(l string) { progress = append(progress, l) }); err != nil {
		t.Fatal(err)
	}
	if len(progress) == 0 || progress[0] != "installing Claude Code (its official installer, as the sandbox has no npm)…" {
		t.Errorf("progress:\n%s", strings.Join(progress, "\n"))
	}
}
