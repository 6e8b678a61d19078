package copilot

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
		{"noise", []string{"", "warning", `[{"type":"result","sessionId":"x"}]`, `{"type":"result","sessionId":"x"`, `{"type":"mystery","sessionId":"x"}`, `{}`,
			`{"type":"user.message","data":{"content":"the prompt <promise>COMPLETE</promise>"}}`,
			`{"type":"assistant.message_delta","data":{"deltaContent":"partial"}}`,
			`{"type":"assistant.message","data":{"content":"","toolRequests":[{"name":"bash"}]}}`,
			`{"type":"assistant.message","data":"not an object"}`,
			`{"type":"tool.execution_complete","data":{"toolName":"bash","arguments":{"command":"ls"}}}`,
			`{"type":"tool.execution_start","data":{"arguments":{"command":"no name"}}}`,
			`{"type":"assistant.usage","data":{"inputTokens":5}}`,
			`{"type":"result","exitCode":1}`,
		}, ""},
		{"messages", []string{
			`{"type":"assistant.message","data":{"messageId":"m1","content":"first"}}`,
			`{"type":"assistant.message","data":{"messageId":"m2","content":"last"}}`,
		}, "text \"first\"\nresult \"first\"\ntext \"last\"\nresult \"last\"\n"},
		{"result", []string{`{"type":"result","sessionId":"s1","exitCode":0,"usage":{"premiumRequests":1}}`}, "session_id s1\n"},
		{"tools", []string{
			`{"type":"tool.execution_start","data":{"toolName":"bash","arguments":{"command":"ls -la","description":"list"}}}`,
			`{"type":"tool.execution_start","data":{"toolName":"view","arguments":{"path":"a.go"}}}`,
			`{"type":"tool.execution_start","data":{"toolName":"create","arguments":{"path":"b.go","file_text":"x"}}}`,
			`{"type":"tool.execution_start","data":{"toolName":"edit","arguments":{"path":"c.go"}}}`,
			`{"type":"tool.execution_start","data":{"toolName":"grep","arguments":{"pattern":"fo+"}}}`,
			`{"type":"tool.execution_start","data":{"toolName":"glob","arguments":{"pattern":"*.go"}}}`,
			`{"type":"tool.execution_start","data":{"toolName":"web_fetch","arguments":{"url":"https://x"}}}`,
			`{"type":"tool.execution_start","data":{"toolName":"task","arguments":{"description":"d"}}}`,
			`{"type":"tool.execution_start","data":{"toolName":"bash","arguments":{"command":7}}}`,
			`{"type":"tool.execution_start","data":{"toolName":"report_intent","arguments":{"intent":"x"}}}`,
		}, `tool_call Bash "ls -la"
tool_call Read "a.go"
tool_call Write "b.go"
tool_call Edit "c.go"
tool_call Grep "fo+"
tool_call Glob "*.go"
tool_call WebFetch "https://x"
tool_call Task "d"
tool_call Bash ""
tool_call report_intent ""
`},
		{"errors", []string{
			`{"type":"session.error","data":{"errorType":"authentication","message":"Authentication failed (HTTP 401)."}}`,
			`{"type":"session.error","data":{"errorType":"quota"}}`,
			`{"type":"error","error":{"message":"top"}}`,
			`{"type":"agent_error","data":{"message":"in data"}}`,
			`{"type":"error"}`,
		}, `error "Authentication failed (HTTP 401)."
error "GitHub Copilot CLI reported an error"
error "top"
error "in data"
error "GitHub Copilot CLI reported an error"
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
}

func TestInvocation(t *testing.T) {
	const prompt = "Fix the bug in $(whoami) `id` 'quoted'\nsecond line"
	const base = `PATH="$PATH:$HOME/.local/bin" copilot --output-format json --allow-all-tools --no-auto-update`
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, base},
		{Config{Model: "claude-sonnet-4.5", Effort: "high", Agent: "reviewer"}, base + ` --model claude-sonnet-4.5 --reasoning-effort high --agent reviewer`},
		{Config{Model: "it's auto"}, base + ` --model 'it'\''s auto'`},
		{Config{Binary: "/opt/my copilot"}, `PATH="$PATH:$HOME/.local/bin" '/opt/my copilot' --output-format json --allow-all-tools --no-auto-update`},
	} {
		inv, err := New(tc.cfg).Invocation(prompt)
		if err != nil {
			t.Fatal(err)
		}
		if inv.Cmd != tc.want {
			t.Errorf("Cmd for %+v:\n%s\nwant\n%s", tc.cfg, inv.Cmd, tc.want)
		}
		if inv.Stdin != prompt || strings.Contains(inv.Cmd, "Fix the bug") || len(inv.Env) != 0 {
			t.Errorf("invocation %+v: the prompt must be on stdin only, with no extra environment", inv)
		}
	}
	// However long, the prompt stays off the command line: a prompt far
	// over the kernel's limit for one argument (128 KiB) is fine.
	big := strings.Repeat("word ", 1<<20)
	if inv, err := New(Config{}).Invocation(big); err != nil || inv.Cmd != base || inv.Stdin != big {
		t.Errorf("a 5 MiB prompt: %v", err)
	}
	for _, tc := range []struct {
		cfg    Config
		prompt string
		want   string
	}{
		{Config{}, " \n", "copilot: the prompt is empty"},
		{Config{Model: "--help"}, "p", `copilot: Model "--help" starts with "-"`},
		{Config{Effort: "ultra"}, "p", `copilot: unknown effort "ultra": use one of none, minimal, low, medium, high, xhigh, max`},
		{Config{Agent: "a\x00b"}, "p", "copilot: Agent contains a NUL byte or a line break"},
	} {
		if _, err := New(tc.cfg).Invocation(tc.prompt); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Invocation(%+v, %q) error %v, want %q", tc.cfg, tc.prompt, err, tc.want)
		}
	}
}

func TestIdentity(t *testing.T) {
	a := New(Config{})
	if a.Name() != "copilot" {
		t.Errorf("Name() = %q", a.Name())
	}
	if got := a.CredentialEnv(); !slices.Equal(got[:3], []string{"COPILOT_GITHUB_TOKEN", "GH_TOKEN", "GITHUB_TOKEN"}) {
		t.Errorf("CredentialEnv() = %v", got)
	}
	for v, want := range map[string]string{
		"":       `npm install -g --prefix "$HOME/.local" --no-fund --no-audit @github/copilot@` + Version,
		"1.0.90": `npm install -g --prefix "$HOME/.local" --no-fund --no-audit @github/copilot@1.0.90`,
		"latest": `npm install -g --prefix "$HOME/.local" --no-fund --no-audit @github/copilot`,
	} {
		if got := New(Config{Version: v}).tool().InstallCommand(); got != want {
			t.Errorf("install command for Version %q:\n%s\nwant\n%s", v, got, want)
		}
	}
}

func TestEnsureWithoutNPM(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	err := New(Config{Binary: "moat-test-copilot", NPM: "moat-no-such-npm"}).Ensure(agenttest.Context(t), h, nil)
	if err == nil || !strings.Contains(err.Error(), "GitHub Copilot CLI (moat-test-copilot) is not installed in the sandbox, and moat installs it with npm") {
		t.Errorf("Ensure: %v", err)
	}
}

// With the registry out of reach, the real npm fails, and the error says
// so, naming the package and the pinned version.
func TestEnsureRegistryUnreachable(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	err := New(Config{Binary: "moat-test-copilot", NPM: agenttest.UnreachableNPM(t, h)}).Ensure(agenttest.Context(t), h, nil)
	if want := "installing GitHub Copilot CLI failed: npm could not reach its registry to fetch " + Package + "@" + Version; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Ensure: %v\nwant an error starting %q", err, want)
	}
}
