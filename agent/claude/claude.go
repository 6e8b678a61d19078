// Package claude drives Claude Code (the claude CLI) in print mode with
// stream-json output.
//
// An invocation runs, in the sandbox's work directory:
//
//	PATH="$PATH:$HOME/.local/bin" claude --print --verbose --output-format stream-json --dangerously-skip-permissions [--model M] [--effort E]
//
// with the prompt on stdin: in print mode claude reads its prompt from stdin
// when none is given on the command line. (Sandcastle adds "-p -"; claude
// has no "-" convention for stdin, so moat passes no prompt argument at
// all.) Permissions are skipped because the agent runs inside a sandbox;
// for the same reason the invocation sets IS_SANDBOX=1, without which
// Claude Code refuses --dangerously-skip-permissions when it runs as root.
// The PATH prefix finds a claude that Ensure installed into
// $HOME/.local/bin, which non-interactive shells usually lack.
package claude

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/npmcli"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/sandbox"
)

// Package is the npm package Ensure installs.
const Package = "@anthropic-ai/claude-code"

// Config configures the Claude Code agent. The zero value uses claude's
// default model and effort.
type Config struct {
	// Model is passed as --model (e.g. "opus", "claude-opus-4-8"); empty
	// means claude's default.
	Model string

	// Effort is passed as --effort (e.g. "low", "high"); empty means
	// claude's default.
	Effort string

	// Binary is the claude command; empty means "claude". It may be a path.
	Binary string

	// InstallCommand, when set, replaces the npm install that Ensure runs
	// when claude is missing. It runs with sh -c in the work directory, with
	// $HOME/.local/bin on PATH; afterwards Binary must be found on PATH or
	// in $HOME/.local/bin.
	InstallCommand string

	// NPM is the npm command Ensure installs with; empty means "npm".
	NPM string

	// InstallTimeout bounds the install Ensure runs when the CLI is
	// missing; 0 means 5 minutes.
	InstallTimeout time.Duration

	// NativeInstallCommand is Claude Code's own installer, which Ensure
	// runs when the sandbox has curl but no npm (it puts a native binary in
	// $HOME/.local/bin). Empty means NativeInstaller; "none" disables it.
	NativeInstallCommand string
}

// NativeInstaller is Anthropic's official installer for Claude Code.
// It is downloaded first and run after, so a failed download fails the
// install (in "curl | bash", bash exits 0 on empty input).
const NativeInstaller = `t=$(mktemp) && curl -fsSL https://claude.ai/install.sh -o "$t" && bash "$t"; rc=$?; rm -f "$t"; exit $rc`

// Agent is Claude Code. Create one with New.
type Agent struct {
	cfg Config
}

var _ agent.Agent = (*Agent)(nil)

// New returns a Claude Code agent for cfg.
func New(cfg Config) *Agent {
	if cfg.Binary == "" {
		cfg.Binary = "claude"
	}
	return &Agent{cfg: cfg}
}

// Name returns "claude".
func (a *Agent) Name() string { return "claude" }

// CredentialEnv returns CLAUDE_CODE_OAUTH_TOKEN (from "claude
// setup-token") and ANTHROPIC_API_KEY.
func (a *Agent) CredentialEnv() []string {
	return []string{"CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY"}
}

func (a *Agent) tool() npmcli.Tool {
	return npmcli.Tool{
		Product: "Claude Code",
		Binary:  a.cfg.Binary,
		Package: Package,
		NPM:     a.cfg.NPM,
		Install: a.cfg.InstallCommand,
		Timeout: a.cfg.InstallTimeout,
		Native:  a.native(),
	}
}

func (a *Agent) native() string {
	switch a.cfg.NativeInstallCommand {
	case "":
		return NativeInstaller
	case "none":
		return ""
	}
	return a.cfg.NativeInstallCommand
}

// Ensure finds claude in the sandbox (on PATH or in $HOME/.local/bin) and
// reports its version; when it is missing, Ensure installs it with npm into
// $HOME/.local, which needs Node.js and npm in the sandbox but no root.
func (a *Agent) Ensure(ctx context.Context, h sandbox.Handle, progress func(line string)) error {
	return a.tool().Ensure(ctx, h, progress)
}

// Invocation returns the claude command for prompt; see the package
// documentation.
func (a *Agent) Invocation(prompt string) (agent.Invocation, error) {
	if strings.TrimSpace(prompt) == "" {
		return agent.Invocation{}, errors.New("claude: the prompt is empty")
	}
	for _, f := range [][2]string{{"Model", a.cfg.Model}, {"Effort", a.cfg.Effort}} {
		if err := npmcli.CheckOptionValue("claude", f[0], f[1]); err != nil {
			return agent.Invocation{}, err
		}
	}
	var b strings.Builder
	b.WriteString(npmcli.PathAssignment + " " + shell.Quote(a.cfg.Binary))
	b.WriteString(" --print --verbose --output-format stream-json --dangerously-skip-permissions")
	if a.cfg.Model != "" {
		b.WriteString(" --model " + shell.Quote(a.cfg.Model))
	}
	if a.cfg.Effort != "" {
		b.WriteString(" --effort " + shell.Quote(a.cfg.Effort))
	}
	return agent.Invocation{
		Cmd:   b.String(),
		Stdin: prompt,
		Env:   map[string]string{"IS_SANDBOX": "1"},
	}, nil
}

// NewParser returns a parser for claude's stream-json output.
func (a *Agent) NewParser() agent.Parser { return &Parser{} }
