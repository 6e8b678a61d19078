// Package codex drives the Codex CLI (codex exec) with JSON-lines output.
//
// An invocation runs, in the sandbox's work directory:
//
//	PATH="$PATH:$HOME/.local/bin" codex exec --json --dangerously-bypass-approvals-and-sandbox [-m M] [-c 'model_reasoning_effort="E"'] -
//
// with the prompt on stdin (the trailing "-" makes codex read it from
// there). Codex's own sandbox and approvals are off because the agent runs
// inside a moat sandbox. The PATH prefix finds a codex that Ensure
// installed into $HOME/.local/bin, which non-interactive shells usually
// lack.
package codex

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/npmcli"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/sandbox"
)

// Package is the npm package Ensure installs.
const Package = "@openai/codex"

// Config configures the Codex agent. The zero value uses codex's default
// model and reasoning effort.
type Config struct {
	// Model is passed as -m (e.g. "gpt-5.4"); empty means codex's default.
	Model string

	// Effort sets model_reasoning_effort (e.g. "low", "high"); empty means
	// codex's default.
	Effort string

	// Binary is the codex command; empty means "codex". It may be a path.
	Binary string

	// InstallCommand, when set, replaces the npm install that Ensure runs
	// when codex is missing. It runs with sh -c in the work directory, with
	// $HOME/.local/bin on PATH; afterwards Binary must be found on PATH or
	// in $HOME/.local/bin.
	InstallCommand string

	// NPM is the npm command Ensure installs with; empty means "npm".
	NPM string

	// InstallTimeout bounds the install Ensure runs when the CLI is
	// missing; 0 means 5 minutes.
	InstallTimeout time.Duration
}

// Agent is Codex. Create one with New.
type Agent struct {
	cfg Config
}

var _ agent.Agent = (*Agent)(nil)

// New returns a Codex agent for cfg.
func New(cfg Config) *Agent {
	if cfg.Binary == "" {
		cfg.Binary = "codex"
	}
	return &Agent{cfg: cfg}
}

// Name returns "codex".
func (a *Agent) Name() string { return "codex" }

// CredentialEnv returns OPENAI_API_KEY and CODEX_API_KEY.
func (a *Agent) CredentialEnv() []string {
	return []string{"OPENAI_API_KEY", "CODEX_API_KEY"}
}

func (a *Agent) tool() npmcli.Tool {
	return npmcli.Tool{
		Product: "Codex",
		Binary:  a.cfg.Binary,
		Package: Package,
		NPM:     a.cfg.NPM,
		Install: a.cfg.InstallCommand,
		Timeout: a.cfg.InstallTimeout,
	}
}

// Ensure finds codex in the sandbox (on PATH or in $HOME/.local/bin) and
// reports its version; when it is missing, Ensure installs it with npm into
// $HOME/.local, which needs Node.js and npm in the sandbox but no root.
func (a *Agent) Ensure(ctx context.Context, h sandbox.Handle, progress func(line string)) error {
	return a.tool().Ensure(ctx, h, progress)
}

// Invocation returns the codex command for prompt; see the package
// documentation.
func (a *Agent) Invocation(prompt string) (agent.Invocation, error) {
	if strings.TrimSpace(prompt) == "" {
		return agent.Invocation{}, errors.New("codex: the prompt is empty")
	}
	for _, f := range [][2]string{{"Model", a.cfg.Model}, {"Effort", a.cfg.Effort}} {
		if err := npmcli.CheckOptionValue("codex", f[0], f[1]); err != nil {
			return agent.Invocation{}, err
		}
	}
	var b strings.Builder
	b.WriteString(npmcli.PathAssignment + " " + shell.Quote(a.cfg.Binary))
	b.WriteString(" exec --json --dangerously-bypass-approvals-and-sandbox")
	if a.cfg.Model != "" {
		b.WriteString(" -m " + shell.Quote(a.cfg.Model))
	}
	if a.cfg.Effort != "" {
		// -c takes key=value with a TOML value: a basic string here.
		b.WriteString(" -c " + shell.Quote("model_reasoning_effort="+tomlString(a.cfg.Effort)))
	}
	b.WriteString(" -")
	return agent.Invocation{Cmd: b.String(), Stdin: prompt}, nil
}

// tomlString returns s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// NewParser returns a parser for codex exec --json output.
func (a *Agent) NewParser() agent.Parser { return &Parser{} }
