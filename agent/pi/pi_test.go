package pi

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
		{"noise", []string{"", "Warning: x", `[{"type":"session","id":"x"}]`, `{"type":"session","id":"x"`, `{"type":"mystery","id":"x"}`, `{}`,
			`{"type":"message_update","assistantMessageEvent":{"type":"text_delta","delta":"d"}}`,
			`{"type":"message_end","message":{"role":"user","content":[{"type":"text","text":"the prompt"}]}}`,
			`{"type":"message_end","message":"not an object"}`,
			`{"type":"tool_execution_start","args":{"command":"no name"}}`,
			`{"type":"auto_retry_start","attempt":1,"errorMessage":"Connection error."}`,
			`{"type":"auto_retry_end","success":true,"attempt":2}`,
			`{"type":"agent_end","messages":[{"role":"user","content":[{"type":"text","text":"only the user"}]}]}`,
		}, ""},
		{"session", []string{` {"type":"session","id":"s1","cwd":"/r"}`, `{"type":"session","id":""}`}, "session_id s1\n"},
		{"assistant message", []string{`{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"thinking","thinking":"t"},{"type":"toolCall","name":"bash"},{"type":"text","text":"b"}],"usage":{"input":1,"output":2,"cacheRead":3,"cacheWrite":4},"stopReason":"toolUse"}}`},
			"text \"ab\"\nusage input=1 cache_creation=4 cache_read=3 output=2\n"},
		{"usage that does not count", []string{
			`{"type":"message_end","message":{"role":"assistant","content":[],"usage":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0}}}`,
			`{"type":"message_end","message":{"role":"assistant","content":[],"usage":{"input":1.5}}}`,
			`{"type":"message_end","message":{"role":"assistant","content":[],"usage":"lots"}}`,
			`{"type":"message_end","message":{"role":"assistant","content":[],"usage":{"input":-5,"output":2}}}`,
		}, "usage input=0 cache_creation=0 cache_read=0 output=2\n"},
		{"failed requests", []string{
			`{"type":"message_end","message":{"role":"assistant","content":[],"stopReason":"error","errorMessage":"401 invalid x-api-key"}}`,
			`{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"partial"}],"stopReason":"aborted"}}`,
			`{"type":"message_end","message":{"role":"assistant","content":[],"stopReason":"error"}}`,
			`{"type":"auto_retry_end","success":false,"attempt":3,"finalError":"Connection error."}`,
			`{"type":"auto_retry_end","success":false}`,
			`{"type":"error","error":{"message":"nested"}}`,
			`{"type":"agent_error"}`,
		}, `error "401 invalid x-api-key"
text "partial"
error "pi: the model request was aborted"
error "pi: the model request failed"
error "Connection error."
error "pi gave up retrying the model request"
error "nested"
error "pi reported an error"
`},
		{"tools", []string{
			`{"type":"tool_execution_start","toolName":"bash","args":{"command":"ls -la"}}`,
			`{"type":"tool_execution_start","toolName":"read","args":{"path":"a.go","offset":3}}`,
			`{"type":"tool_execution_start","toolName":"edit","args":{"path":"b.go"}}`,
			`{"type":"tool_execution_start","toolName":"write","args":{"path":"c.go","content":"x"}}`,
			`{"type":"tool_execution_start","toolName":"grep","args":{"pattern":"fo+"}}`,
			`{"type":"tool_execution_start","toolName":"find","args":{"pattern":"*.go"}}`,
			`{"type":"tool_execution_start","toolName":"ls","args":{}}`,
			`{"type":"tool_execution_start","toolName":"bash","args":{"command":7}}`,
			`{"type":"tool_execution_start","toolName":"bash","args":"ls"}`,
			`{"type":"tool_execution_start","toolName":"subagent","args":{"command":"not shown"}}`,
			`{"type":"tool_execution_end","toolName":"bash","args":{"command":"ls -la"}}`,
		}, `tool_call Bash "ls -la"
tool_call Read "a.go"
tool_call Edit "b.go"
tool_call Write "c.go"
tool_call Grep "fo+"
tool_call Find "*.go"
tool_call LS ""
tool_call Bash ""
tool_call Bash ""
tool_call subagent ""
`},
		{"result", []string{
			`{"type":"agent_end","messages":[{"role":"assistant","content":[{"type":"text","text":"first"}]},{"role":"assistant","content":[{"type":"text","text":"last"}],"stopReason":"stop"},{"role":"toolResult","content":[{"type":"text","text":"not this"}]}]}`,
			`{"type":"agent_end","messages":[{"role":"assistant","content":[]}]}`,
			`{"type":"agent_end","messages":[{"role":"assistant","content":[{"type":"text","text":"x"}],"stopReason":"error","errorMessage":"boom"}]}`,
			`{"type":"agent_end"}`,
		}, "result \"last\"\nresult \"\"\n"},
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
}

func TestInvocation(t *testing.T) {
	const prompt = "Fix the bug in $(whoami) `id` 'quoted'\nsecond line"
	const base = `PATH="$PATH:$HOME/.local/bin" pi --print --mode json`
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, base},
		{Config{Model: "claude-sonnet-4-6", Thinking: "high"}, base + ` --model claude-sonnet-4-6 --thinking high`},
		{Config{Provider: "openai", Model: "gpt-5.4:low"}, base + ` --provider openai --model gpt-5.4:low`},
		{Config{Model: "o'brien *sonnet*"}, base + ` --model 'o'\''brien *sonnet*'`},
		{Config{Binary: "/opt/my pi"}, `PATH="$PATH:$HOME/.local/bin" '/opt/my pi' --print --mode json`},
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
		if strings.Contains(inv.Cmd, "Fix the bug") {
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
		{Config{}, " \n", "pi: the prompt is empty"},
		{Config{Model: "--help"}, "p", `pi: Model "--help" starts with "-"`},
		{Config{Provider: "a\nb"}, "p", "pi: Provider contains a NUL byte or a line break"},
		{Config{Thinking: "max"}, "p", `pi: unknown thinking level "max": use one of off, minimal, low, medium, high, xhigh`},
	} {
		if _, err := New(tc.cfg).Invocation(tc.prompt); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Invocation(%+v, %q) error %v, want %q", tc.cfg, tc.prompt, err, tc.want)
		}
	}
}

func TestIdentity(t *testing.T) {
	a := New(Config{})
	if a.Name() != "pi" {
		t.Errorf("Name() = %q", a.Name())
	}
	if got := a.CredentialEnv(); len(got) == 0 || got[0] != "ANTHROPIC_API_KEY" || !slices.Contains(got, "OPENAI_API_KEY") {
		t.Errorf("CredentialEnv() = %v", got)
	}
	for v, want := range map[string]string{
		"":       `npm install -g --prefix "$HOME/.local" --no-fund --no-audit @mariozechner/pi-coding-agent@` + Version,
		"0.70.0": `npm install -g --prefix "$HOME/.local" --no-fund --no-audit @mariozechner/pi-coding-agent@0.70.0`,
		"latest": `npm install -g --prefix "$HOME/.local" --no-fund --no-audit @mariozechner/pi-coding-agent`,
	} {
		if got := New(Config{Version: v}).tool().InstallCommand(); got != want {
			t.Errorf("install command for Version %q:\n%s\nwant\n%s", v, got, want)
		}
	}
}

// TestEnsureInstallsThenRuns installs a fake pi with the install command,
// then runs it the way moat does: it must get the prompt on stdin and
// exactly the intended arguments.
func TestEnsureInstallsThenRuns(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	install := `mkdir -p "$HOME/.local/bin"
cat > "$HOME/.local/bin/moat-test-pi" <<'EOF'
#!/bin/sh
if [ "$1" = --version ]; then echo "0.73.1"; exit 0; fi
esc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | awk 'BEGIN{ORS=""} NR>1{print "\\n"} {print}'; }
echo '{"type":"session","version":3,"id":"fake-pi-session","cwd":"/r"}'
for a; do printf '{"type":"tool_execution_start","toolName":"bash","args":{"command":"%s"}}\n' "$(esc "$a")"; done
printf '{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"%s"}],"stopReason":"stop"}}\n' "$(esc "$(cat)")"
EOF
chmod +x "$HOME/.local/bin/moat-test-pi"`
	a := New(Config{Binary: "moat-test-pi", InstallCommand: install, Model: "o'brien $HOME", Thinking: "low"})
	var progress []string
	if err := a.Ensure(agenttest.Context(t), h, func(l string) { progress = append(progress, l) }); err != nil {
		t.Fatal(err)
	}
	if len(progress) != 2 || progress[0] != "installing pi (the configured install command)…" || !strings.HasSuffix(progress[1], "/.local/bin/moat-test-pi: 0.73.1") {
		t.Errorf("progress:\n%s", strings.Join(progress, "\n"))
	}
	events, res := agenttest.Run(t, h, a, "fix it\n$(not expanded) 'q'")
	if res.ExitCode != 0 {
		t.Fatalf("exit code %d: %s", res.ExitCode, res.Stderr)
	}
	want := `session_id fake-pi-session
tool_call Bash "--print"
tool_call Bash "--mode"
tool_call Bash "json"
tool_call Bash "--model"
tool_call Bash "o'brien $HOME"
tool_call Bash "--thinking"
tool_call Bash "low"
text "fix it\n$(not expanded) 'q'"
`
	if got := agenttest.Render(events); got != want {
		t.Errorf("events:\n%s\nwant:\n%s", got, want)
	}
}

func TestEnsureWithoutNPM(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	err := New(Config{Binary: "moat-test-pi", NPM: "moat-no-such-npm"}).Ensure(agenttest.Context(t), h, nil)
	if err == nil || !strings.Contains(err.Error(), "pi (moat-test-pi) is not installed in the sandbox, and moat installs it with npm") {
		t.Errorf("Ensure: %v", err)
	}
}

// With the registry out of reach, the real npm fails, and the error says
// so, naming the package and the pinned version.
func TestEnsureRegistryUnreachable(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	err := New(Config{Binary: "moat-test-pi", NPM: agenttest.UnreachableNPM(t, h)}).Ensure(agenttest.Context(t), h, nil)
	if want := "installing pi failed: npm could not reach its registry to fetch " + Package + "@" + Version; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Ensure: %v\nwant an error starting %q", err, want)
	}
}
