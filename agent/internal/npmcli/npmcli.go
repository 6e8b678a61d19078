// Package npmcli makes sure an agent CLI that is distributed on npm (Claude
// Code, Codex, pi, OpenCode, Copilot, Gemini CLI) is installed in a
// sandbox, and installs it when it is not; a CLI installed otherwise (the
// Cursor CLI) uses it with its own install command.
//
// moat installs with "npm install -g --prefix $HOME/.local", a prefix the
// sandbox user owns, so installing needs no root and works on any image with
// Node.js and npm. npm links the CLI into $HOME/.local/bin, which
// non-interactive shells (the ones Exec runs over SSH, say) usually do not
// have on their PATH: every command that looks for or runs the CLI starts
// with PathAssignment.
package npmcli

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/sandbox"
)

// PathAssignment puts $HOME/.local/bin on PATH, after the directories
// already there, so that a CLI in the image wins over one moat installed. As
// a prefix ("PATH=... claude --print") it applies to that one command, and
// sh looks the command up with it.
const PathAssignment = `PATH="$PATH:$HOME/.local/bin"`

// Tool describes one CLI.
type Tool struct {
	Product string // human name, e.g. "Claude Code"
	Binary  string // the command, e.g. "claude"; a path works too
	Package string // the npm package, e.g. "@anthropic-ai/claude-code"

	// Version, when set, is the version of Package npm installs (npm's
	// package@version); "" lets npm pick its latest.
	Version string

	// NPM is the npm command; "" means "npm".
	NPM string

	// Install, when set, is the shell command that installs the CLI,
	// replacing the npm install (and its check for Node.js and npm). It runs
	// in the work directory with $HOME/.local/bin on PATH; afterwards Binary
	// must be found on PATH or in $HOME/.local/bin.
	Install string

	// InstallName, when set, names Install in progress lines and errors
	// ("Cursor's official installer") instead of the command itself.
	InstallName string

	// Native, when set, is the vendor's own installer (a shell command), used
	// when the sandbox has no npm but has curl: a fresh exe.dev VM has git,
	// Go and Python but not necessarily Node.js.
	Native string

	// Timeout bounds the install; 0 means DefaultTimeout. An install that
	// takes longer is stopped, and Ensure says so.
	Timeout time.Duration
	// Heartbeat is how long the install may print nothing before progress
	// says it still runs; 0 means DefaultHeartbeat.
	Heartbeat time.Duration
}

// DefaultTimeout is how long an install may take by default: npm fetching
// an agent CLI and its dependencies takes well under a minute on a
// working network.
const DefaultTimeout = 5 * time.Minute

// DefaultHeartbeat is how long an install may print nothing before
// progress says it is still running.
const DefaultHeartbeat = 10 * time.Second

func (t Tool) heartbeat() time.Duration {
	if t.Heartbeat > 0 {
		return t.Heartbeat
	}
	return DefaultHeartbeat
}

func (t Tool) timeout() time.Duration {
	if t.Timeout <= 0 {
		return DefaultTimeout
	}
	return t.Timeout
}

func (t Tool) npm() string {
	if t.NPM == "" {
		return "npm"
	}
	return t.NPM
}

// InstallCommand returns the shell command that installs the CLI.
func (t Tool) InstallCommand() string {
	if t.Install != "" {
		return t.Install
	}
	// --loglevel=http: npm prints each request it makes, so a slow or
	// failing network shows as it happens, not only at the end.
	return shell.Quote(t.npm()) + ` install -g --prefix "$HOME/.local" --no-fund --no-audit --loglevel=http ` + shell.Quote(t.spec())
}

// spec is the package as npm install takes it: package[@version].
func (t Tool) spec() string {
	if t.Version == "" {
		return t.Package
	}
	return t.Package + "@" + t.Version
}

// shortInstallCommand returns the install command for messages: the npm
// command, or a configured command when it fits on a line, else a mention
// of it.
func (t Tool) shortInstallCommand() string {
	cmd := t.InstallCommand()
	if t.Install != "" && t.InstallName != "" {
		return t.InstallName
	}
	if t.Install != "" && (strings.ContainsAny(cmd, "\n\r") || len(cmd) > 120) {
		return "the configured install command"
	}
	return cmd
}

// Ensure finds the CLI in the sandbox and reports its version to progress;
// when it is missing it installs it, streaming the installer's output to
// progress. Concurrent calls for the same sandbox and binary share one
// install. progress may be nil.
func (t Tool) Ensure(ctx context.Context, h sandbox.Handle, progress func(string)) error {
	if h == nil {
		return fmt.Errorf("installing %s: no sandbox", t.Product)
	}
	if progress == nil {
		progress = func(string) {}
	}
	// Only pointer handles are used as map keys: any other dynamic type
	// might not be comparable.
	if reflect.TypeOf(h).Kind() != reflect.Pointer {
		return t.ensure(ctx, h, progress)
	}
	k := flightKey{h, t.Binary}
	for {
		flightMu.Lock()
		if c, ok := flights[k]; ok {
			flightMu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s to be installed: %w", t.Product, ctx.Err())
			}
			if c.err != nil && !errors.Is(c.err, context.Canceled) && !errors.Is(c.err, context.DeadlineExceeded) {
				return c.err
			}
			continue // installed (check again, cheaply) or the other caller gave up
		}
		c := &flight{done: make(chan struct{})}
		flights[k] = c
		flightMu.Unlock()

		c.err = t.ensure(ctx, h, progress)
		flightMu.Lock()
		delete(flights, k)
		flightMu.Unlock()
		close(c.done)
		return c.err
	}
}

// In-flight Ensure calls, so that one sandbox gets one install at a time.
// Entries last only while a call runs: later calls find the installed CLI.
type flightKey struct {
	h      sandbox.Handle
	binary string
}

type flight struct {
	done chan struct{}
	err  error
}

var (
	flightMu sync.Mutex
	flights  = map[flightKey]*flight{}
)

func (t Tool) ensure(ctx context.Context, h sandbox.Handle, progress func(string)) error {
	found, err := t.find(ctx, h)
	if err != nil {
		return err
	}
	if found.path != "" {
		progress(found.describe("using " + t.Product))
		return nil
	}

	var nodeNPM string // "node v20.1.0, npm 10.2.0", for error messages; "" unless npm installs
	shown, install, failedCmd := t.shortInstallCommand(), t.InstallCommand(), t.shortInstallCommand()
	if t.Install == "" {
		env, err := t.probe(ctx, h)
		if err != nil {
			return err
		}
		switch {
		case env.npm:
			nodeNPM = env.String()
			shown = "npm install -g " + t.spec() + ", into $HOME/.local"
		case t.Native != "" && env.curl:
			// No npm: the vendor's own installer, which needs only curl.
			shown, install, failedCmd = "its official installer, as the sandbox has no npm", t.Native, t.Native
		default:
			return errors.New(t.missingNPM(env))
		}
	}
	limit := t.timeout()
	progress(fmt.Sprintf("installing %s (%s)…", t.Product, shown))
	res, err := t.runInstall(ctx, h, install, limit, progress)
	if errors.Is(err, errInstallTimeout) {
		said := "; it printed nothing"
		if tail := tailBlock(res.Stderr + res.Stdout); tail != "" {
			said = "; what it printed last" + tail
		}
		return fmt.Errorf("installing %s gave up after %s: %s did not finish (check that the sandbox reaches the npm registry, or use an image with %s installed)%s",
			t.Product, limit, failedCmd, t.Binary, said)
	}
	if err != nil {
		return fmt.Errorf("installing %s in the sandbox: %w", t.Product, err)
	}
	if res.ExitCode != 0 {
		ctxNote := ""
		if nodeNPM != "" {
			ctxNote = " (" + nodeNPM + ")"
		}
		out := res.Stderr
		if strings.TrimSpace(out) == "" {
			out = res.Stdout
		}
		if nodeNPM != "" {
			if code := networkError(res.Stdout + res.Stderr); code != "" {
				return fmt.Errorf("installing %s failed: npm could not reach its registry to fetch %s (%s): "+
					"give the sandbox network access to the registry, point npm at a mirror (NPM_CONFIG_REGISTRY), "+
					"or use an image with %s already installed%s",
					t.Product, t.spec(), code, t.Binary, tailBlock(out))
			}
		}
		return fmt.Errorf("installing %s failed: %s exited with code %d%s%s",
			t.Product, failedCmd, res.ExitCode, ctxNote, tailBlock(out))
	}

	found, err = t.find(ctx, h)
	if err != nil {
		return err
	}
	if found.path == "" {
		return fmt.Errorf("installing %s: %s succeeded, but %s is still not found on PATH or in $HOME/.local/bin",
			t.Product, failedCmd, t.Binary)
	}
	progress(found.describe("installed " + t.Product))
	return nil
}

// networkErrors are the codes npm prints when it cannot reach its registry.
var networkErrors = []string{"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH", "EHOSTUNREACH", "ERR_SOCKET_TIMEOUT"}

// networkError returns the first of networkErrors that npm's output holds,
// or "".
func networkError(out string) string {
	for _, code := range networkErrors {
		if strings.Contains(out, code) {
			return code
		}
	}
	return ""
}

// errInstallTimeout: the install ran past Tool.Timeout.
var errInstallTimeout = errors.New("install timed out")

// runInstall runs the install command, relaying its output lines to
// progress and, while it prints nothing, saying every heartbeat that it
// is still running; it stops the install after limit. The result holds
// the output's tail also when the install timed out.
func (t Tool) runInstall(ctx context.Context, h sandbox.Handle, install string, limit time.Duration, progress func(string)) (sandbox.ExecResult, error) {
	ictx, cancel := context.WithTimeoutCause(ctx, limit, errInstallTimeout)
	defer cancel()
	heartbeat := t.heartbeat()
	start := time.Now()
	var mu sync.Mutex
	last := start
	var out strings.Builder // what it printed, for the error when it times out
	relay := func(line string) {
		mu.Lock()
		last = time.Now()
		if out.Len() < 64<<10 {
			out.WriteString(line + "\n")
		}
		mu.Unlock()
		if strings.TrimSpace(line) != "" {
			progress("  " + line)
		}
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(heartbeat / 10)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				mu.Lock()
				quiet := now.Sub(last) >= heartbeat
				if quiet {
					last = now
				}
				mu.Unlock()
				if quiet {
					progress(fmt.Sprintf("  … still installing %s: %s so far, nothing printed for %s (gives up after %s)", t.Product, now.Sub(start).Round(time.Second), heartbeat, limit))
				}
			}
		}
	}()
	res, err := h.Exec(ictx, PathAssignment+"\nexport PATH\n"+install, sandbox.ExecOptions{
		Env:          map[string]string{"NPM_CONFIG_UPDATE_NOTIFIER": "false"},
		OnLine:       relay,
		OnStderrLine: relay,
	})
	if errors.Is(context.Cause(ictx), errInstallTimeout) && ctx.Err() == nil {
		mu.Lock()
		res.Stderr, res.Stdout = out.String(), ""
		mu.Unlock()
		return res, errInstallTimeout
	}
	return res, err
}

// found is where the CLI is and what its --version said.
type found struct {
	path, version string
}

func (f found) describe(prefix string) string {
	if f.version == "" {
		return prefix + " at " + f.path
	}
	return prefix + " at " + f.path + ": " + f.version
}

// find looks the CLI up and runs it with --version. A zero found means it is
// missing; a CLI that is there but cannot say its version is an error (a
// broken install, or a script whose interpreter is missing).
func (t Tool) find(ctx context.Context, h sandbox.Handle) (found, error) {
	bin := shell.Quote(t.Binary)
	script := PathAssignment + "\nexport PATH\n" +
		"p=$(command -v " + bin + ") || exit 0\n" +
		"printf '%s\\n' \"$p\"\n" +
		"exec " + bin + " --version"
	res, err := h.Exec(ctx, script, sandbox.ExecOptions{})
	if err != nil {
		return found{}, fmt.Errorf("looking for %s (%s) in the sandbox: %w", t.Product, t.Binary, err)
	}
	path, rest, _ := strings.Cut(res.Stdout, "\n")
	path = strings.TrimSpace(path)
	if path == "" {
		return found{}, nil
	}
	if res.ExitCode != 0 {
		out := res.Stderr
		if strings.TrimSpace(out) == "" {
			out = rest
		}
		return found{}, fmt.Errorf("%s is installed at %s but does not run: %q exited with code %d%s",
			t.Product, path, t.Binary+" --version", res.ExitCode, tailBlock(out))
	}
	f := found{path: path}
	for l := range strings.Lines(rest) {
		if l = strings.TrimSpace(l); l != "" {
			f.version = l
			break
		}
	}
	return f, nil
}

// nodeEnv says what the sandbox has for installing with npm.
type nodeEnv struct {
	node, npm, curl         bool
	nodeVersion, npmVersion string
}

func (e nodeEnv) String() string {
	var parts []string
	if e.node {
		parts = append(parts, strings.TrimSpace("node "+e.nodeVersion))
	}
	if e.npm {
		parts = append(parts, strings.TrimSpace("npm "+e.npmVersion))
	}
	return strings.Join(parts, ", ")
}

// probe looks for node and npm.
func (t Tool) probe(ctx context.Context, h sandbox.Handle) (nodeEnv, error) {
	npm := shell.Quote(t.npm())
	script := PathAssignment + "\nexport PATH\n" +
		"if command -v node >/dev/null 2>&1; then printf 'node %s\\n' \"$(node --version 2>/dev/null)\"; fi\n" +
		"if command -v " + npm + " >/dev/null 2>&1; then printf 'npm %s\\n' \"$(" + npm + " --version 2>/dev/null)\"; fi\n" +
		"if command -v curl >/dev/null 2>&1; then echo 'curl yes'; fi\n"
	res, err := h.Exec(ctx, script, sandbox.ExecOptions{})
	if err != nil {
		return nodeEnv{}, fmt.Errorf("looking for Node.js and npm in the sandbox: %w", err)
	}
	var e nodeEnv
	for l := range strings.Lines(res.Stdout) {
		what, version, _ := strings.Cut(strings.TrimSpace(l), " ")
		switch what {
		case "node":
			e.node, e.nodeVersion = true, strings.TrimSpace(version)
		case "npm":
			e.npm, e.npmVersion = true, strings.TrimSpace(version)
		case "curl":
			e.curl = true
		}
	}
	return e, nil
}

// missingNPM explains that the CLI cannot be installed for lack of npm.
func (t Tool) missingNPM(e nodeEnv) string {
	has := "neither Node.js (node) nor npm (" + t.npm() + ")"
	fix := "install Node.js and npm in the sandbox image"
	if e.node {
		has = "Node.js (" + strings.TrimSpace("node "+e.nodeVersion) + ") but no npm (" + t.npm() + ")"
		fix = "install npm in the sandbox image"
	}
	return fmt.Sprintf("%s (%s) is not installed in the sandbox, and moat installs it with npm, which needs Node.js and npm; "+
		"this sandbox has %s on its PATH or in $HOME/.local/bin: %s, or use an image with %s already installed",
		t.Product, t.Binary, has, fix, t.Binary)
}

// tailBlock returns the last lines of out as an indented block that starts
// with a newline, or "" when out is blank.
func tailBlock(out string) string {
	const maxLines, maxBytes = 20, 4000
	var lines []string
	for l := range strings.Lines(out) {
		if l = strings.TrimRight(l, "\r\n"); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	s := strings.Join(lines, "\n")
	if len(s) > maxBytes {
		i := len(s) - maxBytes
		for i < len(s) && !utf8.RuneStart(s[i]) {
			i++
		}
		s = "…" + s[i:]
	}
	if s == "" {
		return ""
	}
	return ":\n  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// CheckOptionValue refuses a value for a CLI option (a model name, an
// effort level) that the CLI would misread: one starting with "-" would be
// taken for an option, and NUL or a line break has no place in one.
func CheckOptionValue(cli, field, v string) error {
	if strings.HasPrefix(v, "-") {
		return fmt.Errorf("%s: %s %q starts with \"-\", which %s would read as an option", cli, field, v, cli)
	}
	if strings.ContainsAny(v, "\x00\n\r") {
		return fmt.Errorf("%s: %s contains a NUL byte or a line break", cli, field)
	}
	return nil
}

// Pinned returns the version to install for a configured version v: def
// (the version the agent package pins) when v is empty, "" (npm's latest)
// when v is "latest", else v.
func Pinned(v, def string) string {
	switch v {
	case "":
		return def
	case "latest":
		return ""
	}
	return v
}
