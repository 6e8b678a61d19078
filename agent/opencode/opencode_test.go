package opencode

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
		{"noise", []string{"", "\x1b[0m> build\x1b[0m", `[{"type":"text","sessionID":"x"}]`, `{"type":"text","sessionID":"x"`, `{"type":"mystery"}`, `{}`,
			`{"type":"text","part":{"type":"text","text":""}}`,
			`{"type":"text","part":{"type":"reasoning","text":"hmm"}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"bash","state":{"status":"pending","input":{"command":"ls"}}}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"bash","state":{"status":"running","input":{"command":"ls"}}}}`,
			`{"type":"tool_use","part":{"type":"tool","state":{"status":"completed"}}}`,
			`{"type":"step_finish","part":{"type":"step-finish","tokens":{"input":0,"output":0,"cache":{"read":0,"write":0}}}}`,
		}, ""},
		{"sessions", []string{
			`{"type":"step_start","sessionID":"ses_1","part":{"type":"step-start"}}`,
			`{"type":"text","sessionID":"ses_1","part":{"type":"text","text":"a"}}`,
			`{"type":"step_start","sessionID":"ses_2","part":"not a part"}`,
			`{"type":"step_start","sessionID":""}`,
		}, "session_id ses_1\ntext \"a\"\nresult \"a\"\nsession_id ses_2\n"},
		{"tools", []string{
			`{"type":"tool_use","part":{"type":"tool","tool":"bash","state":{"status":"completed","input":{"command":"ls -la"}}}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"read","state":{"status":"error","input":{"filePath":"a.go"}}}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"write","state":{"status":"completed","input":{"filePath":"b.go","content":"x"}}}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"edit","state":{"status":"completed","input":{"filePath":"c.go"}}}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"glob","state":{"status":"completed","input":{"pattern":"*.go"}}}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"grep","state":{"status":"completed","input":{"pattern":"fo+"}}}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"list","state":{"status":"completed","input":{"path":"."}}}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"webfetch","state":{"status":"completed","input":{"url":"https://x"}}}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"websearch","state":{"status":"completed","input":{"query":"q"}}}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"task","state":{"status":"completed","input":{"description":"d"}}}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"bash","state":{"status":"completed","input":{"command":["ls"]}}}}`,
			`{"type":"tool_use","part":{"type":"tool","tool":"todowrite","state":{"status":"completed","input":{"todos":[]}}}}`,
		}, `tool_call Bash "ls -la"
tool_call Read "a.go"
tool_call Write "b.go"
tool_call Edit "c.go"
tool_call Glob "*.go"
tool_call Grep "fo+"
tool_call LS "."
tool_call WebFetch "https://x"
tool_call WebSearch "q"
tool_call Task "d"
tool_call Bash ""
tool_call todowrite ""
`},
		{"usage", []string{
			`{"type":"step_finish","part":{"type":"step-finish","tokens":{"input":1,"output":2,"reasoning":9,"cache":{"read":3,"write":4}}}}`,
			`{"type":"step_finish","part":{"type":"step-finish","tokens":{"input":-1,"output":2}}}`,
			`{"type":"step_finish","part":{"type":"step-finish","tokens":{"input":1.5}}}`,
		}, "usage input=1 cache_creation=4 cache_read=3 output=2\nusage input=0 cache_creation=0 cache_read=0 output=2\n"},
		{"errors", []string{
			`{"type":"error","sessionID":"s","error":{"name":"APIError","data":{"message":"401 bad key"}}}`,
			`{"type":"error","error":{"name":"ProviderAuthError"}}`,
			`{"type":"error","error":"plain"}`,
			`{"type":"error"}`,
		}, `session_id s
error "401 bad key"
error "OpenCode reported an error (ProviderAuthError)"
error "plain"
error "OpenCode reported an error"
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
	const base = `PATH="$PATH:$HOME/.local/bin" opencode run --format json --auto`
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, base},
		{Config{Model: "opencode/big-pickle", Variant: "high", Agent: "build"}, base + ` --model opencode/big-pickle --variant high --agent build`},
		{Config{Agent: "my agent's"}, base + ` --agent 'my agent'\''s'`},
		{Config{Binary: "/opt/my opencode"}, `PATH="$PATH:$HOME/.local/bin" '/opt/my opencode' run --format json --auto`},
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
	for _, tc := range []struct {
		cfg    Config
		prompt string
		want   string
	}{
		{Config{}, " \n", "opencode: the prompt is empty"},
		{Config{Model: "--help"}, "p", `opencode: Model "--help" starts with "-"`},
		{Config{Variant: "-x"}, "p", `opencode: Variant "-x" starts with "-"`},
		{Config{Agent: "a\nb"}, "p", "opencode: Agent contains a NUL byte or a line break"},
	} {
		if _, err := New(tc.cfg).Invocation(tc.prompt); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Invocation(%+v, %q) error %v, want %q", tc.cfg, tc.prompt, err, tc.want)
		}
	}
}

func TestIdentity(t *testing.T) {
	a := New(Config{})
	if a.Name() != "opencode" {
		t.Errorf("Name() = %q", a.Name())
	}
	if got := a.CredentialEnv(); len(got) == 0 || got[0] != "OPENCODE_API_KEY" || !slices.Contains(got, "ANTHROPIC_API_KEY") {
		t.Errorf("CredentialEnv() = %v", got)
	}
	for v, want := range map[string]string{
		"":        `npm install -g --prefix "$HOME/.local" --no-fund --no-audit opencode-ai@` + Version,
		"1.17.0":  `npm install -g --prefix "$HOME/.local" --no-fund --no-audit opencode-ai@1.17.0`,
		"latest":  `npm install -g --prefix "$HOME/.local" --no-fund --no-audit opencode-ai`,
		"^1.18.0": `npm install -g --prefix "$HOME/.local" --no-fund --no-audit 'opencode-ai@^1.18.0'`,
	} {
		if got := New(Config{Version: v}).tool().InstallCommand(); got != want {
			t.Errorf("install command for Version %q:\n%s\nwant\n%s", v, got, want)
		}
	}
}

func TestEnsureWithoutNPM(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	err := New(Config{Binary: "moat-test-opencode", NPM: "moat-no-such-npm"}).Ensure(agenttest.Context(t), h, nil)
	if err == nil || !strings.Contains(err.Error(), "OpenCode (moat-test-opencode) is not installed in the sandbox, and moat installs it with npm") {
		t.Errorf("Ensure: %v", err)
	}
}

// With the registry out of reach, the real npm fails, and the error says
// so, naming the package and the pinned version.
func TestEnsureRegistryUnreachable(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	err := New(Config{Binary: "moat-test-opencode", NPM: agenttest.UnreachableNPM(t, h)}).Ensure(agenttest.Context(t), h, nil)
	if want := "installing OpenCode failed: npm could not reach its registry to fetch " + Package + "@" + Version; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Ensure: %v\nwant an error starting %q", err, want)
	}
}
