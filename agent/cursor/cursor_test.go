package cursor

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/agenttest"
	"github.com/moatdev/moat/sandbox"
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
		{"noise", []string{"", "update available", `[{"type":"assistant"}]`, `{"type":"assistant"`, `{"type":"mystery","session_id":"x"}`, `{}`,
			`{"type":"user","message":{"content":[{"type":"text","text":"the prompt <promise>COMPLETE</promise>"}]}}`,
			`{"type":"thinking","subtype":"delta","text":"hmm"}`,
			`{"type":"system","subtype":"other","session_id":"x"}`,
			`{"type":"assistant","message":{"content":[]}}`,
			`{"type":"assistant","message":"not an object"}`,
			`{"type":"tool_call","subtype":"completed","tool_call":{"shellToolCall":{"args":{"command":"ls"}}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"a":{},"b":{}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"function":{"arguments":"{}"}}}`,
			`{"type":"result","subtype":"success","result":{"text":"x"}}`,
		}, ""},
		{"text", []string{`{"type":"assistant","message":{"content":[{"type":"text","text":"a"},{"type":"image"},{"type":"text","text":"b"}]}}`}, "text \"ab\"\n"},
		{"tools", []string{
			`{"type":"tool_call","subtype":"started","tool_call":{"shellToolCall":{"args":{"command":"ls -la"}}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"readToolCall":{"args":{"path":"a.go"}}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"writeToolCall":{"args":{"path":"b.go","fileText":"x"}}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"editToolCall":{"args":{"path":"c.go"}}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"deleteToolCall":{"args":{"path":"d.go"}}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"lsToolCall":{"args":{"path":"."}}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"grepToolCall":{"args":{"pattern":"fo+"}}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"globToolCall":{"args":{"globPattern":"*.go"}}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"webFetchToolCall":{"args":{"url":"https://x"}}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"shellToolCall":{"args":{"command":7}}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"shellToolCall":"odd"}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"semSearchToolCall":{"args":{"query":"q"}}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"ToolCall":{}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"mystery":{}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"function":{"name":"run_terminal_cmd","arguments":"{\"command\":\"make\"}"}}}`,
			`{"type":"tool_call","subtype":"started","tool_call":{"function":{"name":"search","arguments":"not json"}}}`,
		}, `tool_call Bash "ls -la"
tool_call Read "a.go"
tool_call Write "b.go"
tool_call Edit "c.go"
tool_call Delete "d.go"
tool_call LS "."
tool_call Grep "fo+"
tool_call Glob "*.go"
tool_call WebFetch "https://x"
tool_call Bash ""
tool_call Bash ""
tool_call SemSearch ""
tool_call ToolCall ""
tool_call mystery ""
tool_call Bash "make"
tool_call search ""
`},
		{"result", []string{init, `{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s1","usage":{"inputTokens":5,"outputTokens":6,"cacheReadTokens":7,"cacheWriteTokens":8}}`},
			"session_id s1\nusage input=5 cache_creation=8 cache_read=7 output=6\nresult \"done\"\n"},
		{"result with claude usage and a new session", []string{init, `{"type":"result","result":"ok","session_id":"s2","usage":{"input_tokens":1,"output_tokens":2}}`},
			"session_id s1\nsession_id s2\nusage input=1 cache_creation=0 cache_read=0 output=2\nresult \"ok\"\n"},
		{"errors", []string{
			`{"type":"result","subtype":"error","is_error":true,"result":"Authentication required."}`,
			`{"type":"result","subtype":"error_during_execution","result":""}`,
			`{"type":"error","error":{"message":"rate limited"}}`,
			`{"type":"error"}`,
		}, `error "Authentication required."
error "Cursor reported an error"
error "rate limited"
error "Cursor reported an error"
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
	const base = `PATH="$PATH:$HOME/.local/bin" cursor-agent --print --output-format stream-json --force --trust`
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, base},
		{Config{Model: "composer-2"}, base + ` --model composer-2`},
		{Config{Model: "it's auto"}, base + ` --model 'it'\''s auto'`},
		{Config{Binary: "agent"}, `PATH="$PATH:$HOME/.local/bin" agent --print --output-format stream-json --force --trust`},
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
		{Config{}, " \n", "cursor: the prompt is empty"},
		{Config{Model: "--help"}, "p", `cursor: Model "--help" starts with "-"`},
	} {
		if _, err := New(tc.cfg).Invocation(tc.prompt); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Invocation(%+v, %q) error %v, want %q", tc.cfg, tc.prompt, err, tc.want)
		}
	}
}

func TestIdentity(t *testing.T) {
	a := New(Config{})
	if a.Name() != "cursor" {
		t.Errorf("Name() = %q", a.Name())
	}
	if got := a.CredentialEnv(); !slices.Equal(got, []string{"CURSOR_API_KEY"}) {
		t.Errorf("CredentialEnv() = %v", got)
	}
	if got := a.tool().InstallName; got != "a download of version "+Version+" from https://downloads.cursor.com/lab" {
		t.Errorf("pinned install: %q", got)
	}
	if got := New(Config{Version: "latest"}).tool().InstallName; got != "Cursor's official installer, https://cursor.com/install" {
		t.Errorf("latest install: %q", got)
	}
}

// mirror makes, in the sandbox, a download tree holding version v of a
// fake Cursor CLI package for the sandbox's system, laid out as Cursor's
// download server lays it out, and returns its file:// URL.
func mirror(t *testing.T, h sandbox.Handle, run func(string) string, v string) string {
	t.Helper()
	run(`set -e
case "$(uname -m)" in x86_64|amd64) arch=x64 ;; *) arch=arm64 ;; esac
d="mirror/` + v + `/$(uname -s | tr A-Z a-z)/$arch"
mkdir -p "$d" pkg/dist-package
cat > pkg/dist-package/cursor-agent <<'FAKE'
#!/bin/sh
if [ "$1" = --version ]; then echo "` + v + `"; exit 0; fi
echo '{"type":"system","subtype":"init","session_id":"from-the-mirror"}'
FAKE
chmod +x pkg/dist-package/cursor-agent
tar -czf "$d/agent-cli-package.tar.gz" -C pkg dist-package`)
	return "file://" + h.WorkDir() + "/mirror"
}

// TestEnsureDownloadsThePinnedVersion installs from a mirror with the
// same layout as Cursor's download server, through the real install
// script (curl, tar, the links the official installer makes).
func TestEnsureDownloadsThePinnedVersion(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"curl", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the install needs %s in the sandbox, and the local sandbox shares the host's tools", tool)
		}
	}
	h := agenttest.Sandbox(t)
	run := func(cmd string) string { return agenttest.Exec(t, h, cmd) }
	base := mirror(t, h, run, "2026.01.02-abc1234")
	a := New(Config{Version: "2026.01.02-abc1234", DownloadBase: base + "/"})
	var progress []string
	if err := a.Ensure(agenttest.Context(t), h, func(l string) { progress = append(progress, l) }); err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, strings.Join(progress, "\n"))
	}
	home := strings.TrimSpace(run(`printf %s "$HOME"`))
	want := []string{
		"installing Cursor CLI (a download of version 2026.01.02-abc1234 from " + base + ")…",
		"  downloading " + base + "/2026.01.02-abc1234/",
		"  unpacked into " + home + "/.local/share/cursor-agent/versions/2026.01.02-abc1234",
		"installed Cursor CLI at " + home + "/.local/bin/cursor-agent: 2026.01.02-abc1234",
	}
	if len(progress) != len(want) || progress[0] != want[0] || !strings.HasPrefix(progress[1], want[1]) || progress[2] != want[2] || progress[3] != want[3] {
		t.Errorf("progress:\n%s\nwant:\n%s", strings.Join(progress, "\n"), strings.Join(want, "\n"))
	}
	if got := run(`readlink "$HOME/.local/bin/agent"`); strings.TrimSpace(got) != home+"/.local/share/cursor-agent/versions/2026.01.02-abc1234/cursor-agent" {
		t.Errorf("agent links to %q", got)
	}
	events, res := agenttest.Run(t, h, a, "hello")
	if res.ExitCode != 0 || agenttest.Render(events) != "session_id from-the-mirror\n" {
		t.Errorf("running the installed CLI: exit %d, events %s", res.ExitCode, agenttest.Render(events))
	}
	// Found, not downloaded again.
	progress = nil
	if err := a.Ensure(agenttest.Context(t), h, func(l string) { progress = append(progress, l) }); err != nil || len(progress) != 1 || !strings.HasPrefix(progress[0], "using Cursor CLI at ") {
		t.Errorf("second Ensure: %v, progress %q", err, progress)
	}
}

// A version the server does not have, or a server out of reach, fails
// with an error that says the CLI could not be fetched, and from where.
func TestEnsureCannotFetch(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the install needs curl in the sandbox, and the local sandbox shares the host's tools")
	}
	h := agenttest.Sandbox(t)
	base := "file://" + h.WorkDir() + "/no-mirror"
	err := New(Config{Version: "2026.01.02-abc1234", DownloadBase: base}).Ensure(agenttest.Context(t), h, nil)
	want := "installing Cursor CLI failed: a download of version 2026.01.02-abc1234 from " + base + " exited with code 1:"
	if err == nil || !strings.HasPrefix(err.Error(), want) ||
		!strings.Contains(err.Error(), "moat: could not fetch the Cursor CLI 2026.01.02-abc1234 from "+base+"/2026.01.02-abc1234/") {
		t.Errorf("Ensure: %v\nwant an error starting %q", err, want)
	}
}

func TestEnsureRefusesBadVersions(t *testing.T) {
	for _, v := range []string{"../../..", "-rf", "1.0 2", "a/b", ".hidden", "x$(id)"} {
		err := New(Config{Version: v}).Ensure(agenttest.Context(t), nil, nil)
		if err == nil || !strings.HasPrefix(err.Error(), "cursor: Version "+`"`) {
			t.Errorf("Version %q: %v", v, err)
		}
	}
}
