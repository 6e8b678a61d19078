package npmcli

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatdev/moat/agent/internal/agenttest"
	"github.com/moatdev/moat/sandbox"
)

// progressLog collects progress lines; safe for concurrent use.
type progressLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *progressLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

func (l *progressLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// fakeInstall is an install command that counts its runs in
// $HOME/install-count, prints two lines of progress and installs a fake CLI
// named bin into $HOME/.local/bin.
func fakeInstall(bin string) string {
	return `n=$(cat "$HOME/install-count" 2>/dev/null || echo 0); echo $((n+1)) > "$HOME/install-count"
echo "fetching fake package"
echo "linking fake package" >&2
mkdir -p "$HOME/.local/bin"
printf '#!/bin/sh\necho "1.2.3 (fake)"\n' > "$HOME/.local/bin/` + bin + `"
chmod +x "$HOME/.local/bin/` + bin + `"
`
}

func TestInstallsOnceThenFinds(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	tool := Tool{Product: "Fake CLI", Binary: "moat-fake-cli", Package: "@moat/fake", Install: fakeInstall("moat-fake-cli")}

	// Concurrent calls for one sandbox share one install.
	var wg sync.WaitGroup
	logs := make([]*progressLog, 3)
	errs := make([]error, 3)
	for i := range logs {
		logs[i] = &progressLog{}
		wg.Go(func() { errs[i] = tool.Ensure(agenttest.Context(t), h, logs[i].add) })
	}
	wg.Wait()
	installs := 0
	for i, l := range logs {
		if errs[i] != nil {
			t.Fatalf("Ensure %d: %v\nprogress:\n%s", i, errs[i], l)
		}
		if strings.Contains(l.String(), "installing Fake CLI") {
			installs++
			want := []string{
				"installing Fake CLI (the configured install command)…",
				"  fetching fake package",
				"  linking fake package",
				"installed Fake CLI at " + home(t, h) + "/.local/bin/moat-fake-cli: 1.2.3 (fake)",
			}
			// stdout and stderr lines may come in either order.
			got := slices.Clone(logs[i].lines)
			if len(got) == len(want) {
				slices.Sort(got[1:3])
			}
			if !slices.Equal(got, want) {
				t.Errorf("progress of the installing call:\n%q\nwant\n%q", got, want)
			}
		} else if got, want := l.String(), "using Fake CLI at "+home(t, h)+"/.local/bin/moat-fake-cli: 1.2.3 (fake)"; got != want {
			t.Errorf("progress of a waiting call: %q, want %q", got, want)
		}
	}
	if installs != 1 {
		t.Errorf("%d calls report installing, want 1", installs)
	}

	// Later calls find it.
	var later progressLog
	if err := tool.Ensure(agenttest.Context(t), h, later.add); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(later.String(), "using Fake CLI at ") {
		t.Errorf("progress of a later call: %q", later.String())
	}
	if got := strings.TrimSpace(agenttest.Exec(t, h, `cat "$HOME/install-count"`)); got != "1" {
		t.Errorf("install ran %s times, want 1", got)
	}

	// A nil progress is fine.
	if err := tool.Ensure(agenttest.Context(t), h, nil); err != nil {
		t.Fatal(err)
	}
}

func home(t *testing.T, h sandbox.Handle) string {
	return strings.TrimSpace(agenttest.Exec(t, h, `printf '%s\n' "$HOME"`))
}

func TestFindsPreinstalled(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	agenttest.Exec(t, h, `mkdir -p bin && printf '#!/bin/sh\necho "tool 4.5.6"\n' > "bin/my tool" && chmod +x "bin/my tool"`)
	tool := Tool{Product: "Fake CLI", Binary: h.WorkDir() + "/bin/my tool", Package: "@moat/fake", Install: "echo should not run; exit 1"}
	var log progressLog
	if err := tool.Ensure(agenttest.Context(t), h, log.add); err != nil {
		t.Fatal(err)
	}
	if got, want := log.String(), "using Fake CLI at "+h.WorkDir()+"/bin/my tool: tool 4.5.6"; got != want {
		t.Errorf("progress %q, want %q", got, want)
	}
}

func TestNPMMissing(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	tool := Tool{Product: "Fake CLI", Binary: "moat-fake-cli", Package: "@moat/fake", NPM: "moat-no-such-npm"}
	err := tool.Ensure(agenttest.Context(t), h, nil)
	if err == nil {
		t.Fatal("Ensure succeeded without npm")
	}
	t.Log(err)
	msg := err.Error()
	for _, want := range []string{"Fake CLI (moat-fake-cli) is not installed in the sandbox", "moat installs it with npm", "no npm (moat-no-such-npm)", "use an image with moat-fake-cli already installed"} {
		if !strings.Contains(msg, want) && !(want == "no npm (moat-no-such-npm)" && strings.Contains(msg, "neither Node.js (node) nor npm (moat-no-such-npm)")) {
			t.Errorf("error lacks %q", want)
		}
	}
}

func TestMissingNPMMessages(t *testing.T) {
	tool := Tool{Product: "Claude Code", Binary: "claude", Package: "@anthropic-ai/claude-code"}
	for _, tc := range []struct {
		env  nodeEnv
		want string
	}{
		{nodeEnv{}, "Claude Code (claude) is not installed in the sandbox, and moat installs it with npm, which needs Node.js and npm; " +
			"this sandbox has neither Node.js (node) nor npm (npm) on its PATH or in $HOME/.local/bin: " +
			"install Node.js and npm in the sandbox image, or use an image with claude already installed"},
		{nodeEnv{node: true, nodeVersion: "v12.22.9"}, "Claude Code (claude) is not installed in the sandbox, and moat installs it with npm, which needs Node.js and npm; " +
			"this sandbox has Node.js (node v12.22.9) but no npm (npm) on its PATH or in $HOME/.local/bin: " +
			"install npm in the sandbox image, or use an image with claude already installed"},
	} {
		if got := tool.missingNPM(tc.env); got != tc.want {
			t.Errorf("missingNPM(%+v) =\n%s\nwant\n%s", tc.env, got, tc.want)
		}
	}
}

// fakeNPM writes an npm stand-in to the work directory and returns its path.
func fakeNPM(t *testing.T, h sandbox.Handle, install string) string {
	agenttest.Exec(t, h, `cat > fake-npm <<'EOF'
#!/bin/sh
if [ "$1" = --version ]; then echo 10.9.9-fake; exit 0; fi
printf '%s\n' "$*" > "$HOME/npm-args"
`+install+`
EOF
chmod +x fake-npm`)
	return h.WorkDir() + "/fake-npm"
}

func TestNPMInstallFails(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	npm := fakeNPM(t, h, `for i in $(seq 1 40); do echo "npm http fetch GET 200 https://registry.npmjs.org/pkg$i" >&2; done
echo "npm error code E404" >&2
echo "npm error 404 Not Found - GET https://registry.npmjs.org/@moat%2ffake - Not found" >&2
exit 1`)
	tool := Tool{Product: "Fake CLI", Binary: "moat-fake-cli", Package: "@moat/fake", NPM: npm}
	var log progressLog
	err := tool.Ensure(agenttest.Context(t), h, log.add)
	if err == nil {
		t.Fatal("Ensure succeeded")
	}
	t.Log(err)
	msg := err.Error()
	for _, want := range []string{
		"installing Fake CLI failed: " + npm + ` install -g --prefix "$HOME/.local" --no-fund --no-audit --loglevel=http @moat/fake exited with code 1`,
		"npm 10.9.9-fake",
		"\n  npm error code E404\n  npm error 404 Not Found",
		"pkg40",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if strings.Contains(msg, "pkg20\n") {
		t.Error("error holds more than the tail of npm's output")
	}
	if got, want := strings.TrimSpace(agenttest.Exec(t, h, `cat "$HOME/npm-args"`)), `install -g --prefix `+home(t, h)+`/.local --no-fund --no-audit --loglevel=http @moat/fake`; got != want {
		t.Errorf("npm ran with %q, want %q", got, want)
	}
	if !strings.HasPrefix(log.String(), "installing Fake CLI (npm install -g @moat/fake, into $HOME/.local)…\n  npm http fetch") {
		t.Errorf("progress:\n%s", log.String())
	}
}

// An unreachable registry is said in so many words, naming the package and
// the version.
func TestNPMRegistryUnreachable(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	npm := fakeNPM(t, h, `echo "npm error code ENOTFOUND" >&2
echo "npm error request to https://registry.npmjs.org/@moat%2ffake failed, reason: getaddrinfo ENOTFOUND registry.npmjs.org" >&2
exit 1`)
	tool := Tool{Product: "Fake CLI", Binary: "moat-fake-cli", Package: "@moat/fake", Version: "1.2.3", NPM: npm}
	var log progressLog
	err := tool.Ensure(agenttest.Context(t), h, log.add)
	if err == nil {
		t.Fatal("Ensure succeeded")
	}
	want := "installing Fake CLI failed: npm could not reach its registry to fetch @moat/fake@1.2.3 (ENOTFOUND): give the sandbox network access"
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "\n  npm error request to https://registry.npmjs.org/") {
		t.Errorf("error:\n%v\nwant one starting\n%s", err, want)
	}
	if !strings.HasPrefix(log.String(), "installing Fake CLI (npm install -g @moat/fake@1.2.3, into $HOME/.local)…") {
		t.Errorf("progress:\n%s", log.String())
	}
}

// InstallName stands for the install command in progress and errors.
func TestInstallName(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	tool := Tool{Product: "Fake CLI", Binary: "moat-fake-cli", Install: "echo cannot fetch >&2; exit 7", InstallName: "its official installer"}
	var log progressLog
	err := tool.Ensure(agenttest.Context(t), h, log.add)
	if err == nil || err.Error() != "installing Fake CLI failed: its official installer exited with code 7:\n  cannot fetch" {
		t.Errorf("Ensure: %v", err)
	}
	if !strings.HasPrefix(log.String(), "installing Fake CLI (its official installer)…") {
		t.Errorf("progress:\n%s", log.String())
	}
}

func TestNPMInstallsButNothingFound(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	npm := fakeNPM(t, h, `echo "added 1 package in 1s"`)
	tool := Tool{Product: "Fake CLI", Binary: "moat-fake-cli", Package: "@moat/fake", NPM: npm}
	err := tool.Ensure(agenttest.Context(t), h, nil)
	if err == nil || !strings.Contains(err.Error(), "succeeded, but moat-fake-cli is still not found on PATH or in $HOME/.local/bin") {
		t.Fatalf("Ensure: %v", err)
	}
}

func TestBrokenInstall(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	agenttest.Exec(t, h, `mkdir -p "$HOME/.local/bin" && printf '#!/bin/sh\necho "/usr/bin/env: '"'"'node'"'"': No such file or directory" >&2\nexit 127\n' > "$HOME/.local/bin/moat-fake-cli" && chmod +x "$HOME/.local/bin/moat-fake-cli"`)
	tool := Tool{Product: "Fake CLI", Binary: "moat-fake-cli", Package: "@moat/fake", Install: "exit 99"}
	err := tool.Ensure(agenttest.Context(t), h, nil)
	if err == nil {
		t.Fatal("Ensure succeeded")
	}
	want := "Fake CLI is installed at " + home(t, h) + `/.local/bin/moat-fake-cli but does not run: "moat-fake-cli --version" exited with code 127:` +
		"\n  /usr/bin/env: 'node': No such file or directory"
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant\n%s", err, want)
	}
}

func TestCancelled(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tool := Tool{Product: "Fake CLI", Binary: "moat-fake-cli", Package: "@moat/fake"}
	if err := tool.Ensure(ctx, h, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Ensure with a cancelled context: %v", err)
	}
}

func TestInstallCommand(t *testing.T) {
	for _, tc := range []struct {
		tool Tool
		want string
	}{
		{Tool{Package: "@anthropic-ai/claude-code"}, `npm install -g --prefix "$HOME/.local" --no-fund --no-audit --loglevel=http @anthropic-ai/claude-code`},
		{Tool{Package: "@openai/codex", NPM: "/opt/node 22/bin/npm"}, `'/opt/node 22/bin/npm' install -g --prefix "$HOME/.local" --no-fund --no-audit --loglevel=http @openai/codex`},
		{Tool{Package: "@openai/codex", Install: "curl -fsSL https://example.com/i.sh | sh"}, "curl -fsSL https://example.com/i.sh | sh"},
		{Tool{Package: "@google/gemini-cli", Version: "0.61.0"}, `npm install -g --prefix "$HOME/.local" --no-fund --no-audit --loglevel=http @google/gemini-cli@0.61.0`},
	} {
		if got := tc.tool.InstallCommand(); got != tc.want {
			t.Errorf("InstallCommand() = %s, want %s", got, tc.want)
		}
	}
}

func TestTailBlock(t *testing.T) {
	if got := tailBlock(" \n\n"); got != "" {
		t.Errorf("tailBlock(blank) = %q", got)
	}
	var b strings.Builder
	for i := range 30 {
		fmt.Fprintf(&b, "line %d\r\n\n", i)
	}
	got := tailBlock(b.String())
	if !strings.HasPrefix(got, ":\n  line 10\n  line 11\n") || !strings.HasSuffix(got, "\n  line 29") || strings.Count(got, "\n") != 20 {
		t.Errorf("tailBlock(30 lines) = %q", got)
	}
	long := strings.Repeat("é", 3000)
	if got := tailBlock(long); len(got) > 4100 || !strings.HasPrefix(got, ":\n  …é") {
		t.Errorf("tailBlock(long line): %d bytes, starting %q", len(got), got[:10])
	}
}

// TestRealNPM runs the default install, with the real npm, on a package in
// a local directory (no registry involved).
func TestRealNPM(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not installed")
	}
	h := agenttest.Sandbox(t)
	agenttest.Exec(t, h, `mkdir -p pkg && cd pkg &&
printf '{"name":"moat-fake-cli","version":"0.0.1","bin":{"moat-fake-cli":"cli.js"}}\n' > package.json &&
printf '#!/usr/bin/env node\nconsole.log("moat-fake-cli " + process.argv.slice(2).join(" "))\n' > cli.js`)
	tool := Tool{Product: "Fake CLI", Binary: "moat-fake-cli", Package: h.WorkDir() + "/pkg"}
	var log progressLog
	if err := tool.Ensure(agenttest.Context(t), h, log.add); err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, log.String())
	}
	t.Logf("progress:\n%s", log.String())
	if got, want := log.lines[len(log.lines)-1], "installed Fake CLI at "+home(t, h)+"/.local/bin/moat-fake-cli: moat-fake-cli --version"; got != want {
		t.Errorf("last progress line %q, want %q", got, want)
	}
	if got := agenttest.Exec(t, h, PathAssignment+" moat-fake-cli run"); got != "moat-fake-cli run\n" {
		t.Errorf("running the installed CLI: %q", got)
	}
}

// TestInstallTimeout: an install that hangs says, while it prints
// nothing, that it is still running, and is stopped after Tool.Timeout
// with an error that names the command and what it printed.
func TestInstallTimeout(t *testing.T) {
	t.Parallel()
	h := agenttest.Sandbox(t)
	npm := fakeNPM(t, h, `echo "npm http fetch GET https://registry.npmjs.org/@moat%2ffake attempt 1 failed with ECONNRESET" >&2; sleep 30`)
	tool := Tool{Product: "Fake CLI", Binary: "moat-fake-cli", Package: "@moat/fake", NPM: npm, Timeout: 1500 * time.Millisecond, Heartbeat: 200 * time.Millisecond}
	var log progressLog
	start := time.Now()
	err := tool.Ensure(agenttest.Context(t), h, log.add)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Ensure took %s with a timeout of 1.5s", took)
	}
	if err == nil {
		t.Fatal("Ensure succeeded")
	}
	want := "installing Fake CLI gave up after 1.5s: " + npm + ` install -g --prefix "$HOME/.local" --no-fund --no-audit --loglevel=http @moat/fake did not finish` +
		" (check that the sandbox reaches the npm registry, or use an image with moat-fake-cli installed); what it printed last:" +
		"\n  npm http fetch GET https://registry.npmjs.org/@moat%2ffake attempt 1 failed with ECONNRESET"
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant\n%s", err, want)
	}
	if !strings.Contains(log.String(), "  … still installing Fake CLI: ") || !strings.Contains(log.String(), "(gives up after 1.5s)") {
		t.Errorf("no heartbeat while the install printed nothing:\n%s", log.String())
	}
}
