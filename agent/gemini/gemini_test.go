package gemini

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
		{"noise", []string{"", "Loaded cached credentials.", `[{"type":"init","session_id":"x"}]`, `{"type":"init","session_id":"x"`, `{"type":"mystery","session_id":"x"}`, `{}`,
			`{"type":"tool_result","tool_id":"t","status":"error","output":"boom"}`,
			`{"type":"tool_use","parameters":{"command":"no name"}}`,
			`{"type":"message","role":"user","content":"the prompt <promise>COMPLETE</promise>"}`,
			`{"type":"message","role":"assistant","content":42}`,
		}, ""},
		{"init", []string{` {"type":"init","session_id":"s1","model":"m"}`, `{"type":"init","session_id":""}`}, "session_id s1\n"},
		{"deltas held until a tool call or the result", []string{
			`{"type":"message","role":"assistant","content":"a","delta":true}`,
			`{"type":"message","role":"assistant","content":"b","delta":true}`,
			`{"type":"tool_use","tool_name":"run_shell_command","tool_id":"1","parameters":{"command":"ls"}}`,
			`{"type":"tool_use","tool_name":"glob","parameters":{"pattern":"*.go"}}`,
			`{"type":"message","role":"assistant","content":"c"}`,
			`{"type":"message","role":"assistant","content":"d"}`,
			`{"type":"result","status":"success","stats":{"input_tokens":10,"output_tokens":3,"cached":4,"input":6}}`,
		}, `text "ab"
tool_call Bash "ls"
tool_call Glob "*.go"
text "cd"
usage input=6 cache_creation=0 cache_read=4 output=3
result "cd"
`},
		{"result without text", []string{`{"type":"result","status":"success"}`}, "result \"\"\n"},
		{"usage", []string{
			`{"type":"result","status":"success","stats":{"input_tokens":10,"output_tokens":3,"cached":4}}`,
			`{"type":"result","status":"success","stats":{"input_tokens":0,"output_tokens":0,"cached":0,"input":0}}`,
			`{"type":"result","status":"success","stats":{"input_tokens":-3,"output_tokens":1}}`,
			`{"type":"result","status":"success","stats":"lots"}`,
		}, `usage input=6 cache_creation=0 cache_read=4 output=3
result ""
result ""
usage input=0 cache_creation=0 cache_read=0 output=1
result ""
result ""
`},
		{"errors", []string{
			`{"type":"message","role":"assistant","content":"partial"}`,
			`{"type":"result","status":"error","error":{"type":"unknown","message":"[API Error: quota]"}}`,
			`{"type":"result","status":"error"}`,
			`{"type":"error","severity":"warning","message":"Loop detected"}`,
			`{"type":"error"}`,
		}, `text "partial"
error "[API Error: quota]"
error "Gemini CLI reported an error"
error "Loop detected"
error "Gemini CLI reported an error"
`},
		{"tools", []string{
			`{"type":"tool_use","tool_name":"read_file","parameters":{"file_path":"a.go"}}`,
			`{"type":"tool_use","tool_name":"write_file","parameters":{"file_path":"b.go","content":"x"}}`,
			`{"type":"tool_use","tool_name":"replace","parameters":{"file_path":"c.go","old_string":"a","new_string":"b"}}`,
			`{"type":"tool_use","tool_name":"grep_search","parameters":{"pattern":"fo+"}}`,
			`{"type":"tool_use","tool_name":"list_directory","parameters":{"dir_path":"."}}`,
			`{"type":"tool_use","tool_name":"web_fetch","parameters":{"prompt":"summarise https://x"}}`,
			`{"type":"tool_use","tool_name":"google_web_search","parameters":{"query":"q"}}`,
			`{"type":"tool_use","tool_name":"run_shell_command","parameters":{"command":["ls"]}}`,
			`{"type":"tool_use","tool_name":"write_todos","parameters":{"todos":[]}}`,
		}, `tool_call Read "a.go"
tool_call Write "b.go"
tool_call Edit "c.go"
tool_call Grep "fo+"
tool_call LS "."
tool_call WebFetch "summarise https://x"
tool_call WebSearch "q"
tool_call Bash ""
tool_call write_todos ""
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

// TestBoundedText checks that a parser holds at most MaxText bytes of text
// however many deltas come without a tool call.
func TestBoundedText(t *testing.T) {
	p := New(Config{}).NewParser()
	delta := `{"type":"message","role":"assistant","content":"` + strings.Repeat("x", 1000) + `","delta":true}`
	for range 3 * MaxText / 1000 {
		if ev := p.Parse(delta); len(ev) != 0 {
			t.Fatalf("a delta gave events %+v", ev)
		}
	}
	events := p.Parse(`{"type":"result","status":"success"}`)
	if len(events) != 2 || len(events[0].Text) > MaxText || len(events[0].Text) < MaxText-1000 || events[1].Text != events[0].Text {
		t.Errorf("after %d bytes of deltas: %d events, text of %d bytes", 3*MaxText, len(events), len(events[0].Text))
	}
}

func TestInvocation(t *testing.T) {
	const prompt = "Fix the bug in $(whoami) `id` 'quoted'\nsecond line"
	const base = `PATH="$PATH:$HOME/.local/bin" gemini --output-format stream-json`
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, base + ` --approval-mode yolo --skip-trust`},
		{Config{Model: "gemini-2.5-pro", ApprovalMode: "auto_edit"}, base + ` --approval-mode auto_edit --skip-trust -m gemini-2.5-pro`},
		{Config{Model: "it's a model"}, base + ` --approval-mode yolo --skip-trust -m 'it'\''s a model'`},
		{Config{Binary: "/opt/my gemini"}, `PATH="$PATH:$HOME/.local/bin" '/opt/my gemini' --output-format stream-json --approval-mode yolo --skip-trust`},
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
		{Config{}, " \n", "gemini: the prompt is empty"},
		{Config{Model: "--help"}, "p", `gemini: Model "--help" starts with "-"`},
		{Config{ApprovalMode: "all"}, "p", `gemini: unknown approval mode "all": use one of yolo, auto_edit, default, plan`},
	} {
		if _, err := New(tc.cfg).Invocation(tc.prompt); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Invocation(%+v, %q) error %v, want %q", tc.cfg, tc.prompt, err, tc.want)
		}
	}
}

func TestIdentity(t *testing.T) {
	a := New(Config{})
	if a.Name() != "gemini" {
		t.Errorf("Name() = %q", a.Name())
	}
	if got := a.CredentialEnv(); !slices.Equal(got, []string{"GEMINI_API_KEY", "GOOGLE_API_KEY"}) {
		t.Errorf("CredentialEnv() = %v", got)
	}
	for v, want := range map[string]string{
		"":       `npm install -g --prefix "$HOME/.local" --no-fund --no-audit @google/gemini-cli@` + Version,
		"0.60.1": `npm install -g --prefix "$HOME/.local" --no-fund --no-audit @google/gemini-cli@0.60.1`,
		"latest": `npm install -g --prefix "$HOME/.local" --no-fund --no-audit @google/gemini-cli`,
	} {
		if got := New(Config{Version: v}).tool().InstallCommand(); got != want {
			t.Errorf("install command for Version %q:\n%s\nwant\n%s", v, got, want)
		}
	}
}

func TestEnsureWithoutNPM(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	err := New(Config{Binary: "moat-test-gemini", NPM: "moat-no-such-npm"}).Ensure(agenttest.Context(t), h, nil)
	if err == nil || !strings.Contains(err.Error(), "Gemini CLI (moat-test-gemini) is not installed in the sandbox, and moat installs it with npm") {
		t.Errorf("Ensure: %v", err)
	}
}

// With the registry out of reach, the real npm fails, and the error says
// so, naming the package and the pinned version.
func TestEnsureRegistryUnreachable(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	err := New(Config{Binary: "moat-test-gemini", NPM: agenttest.UnreachableNPM(t, h)}).Ensure(agenttest.Context(t), h, nil)
	if want := "installing Gemini CLI failed: npm could not reach its registry to fetch " + Package + "@" + Version; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Ensure: %v\nwant an error starting %q", err, want)
	}
}
