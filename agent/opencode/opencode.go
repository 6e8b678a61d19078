// Package opencode drives OpenCode (the opencode CLI of opencode-ai) with
// opencode run and its JSON-lines output.
//
// An invocation runs, in the sandbox's work directory:
//
//	PATH="$PATH:$HOME/.local/bin" opencode run --format json --auto [--model M] [--variant V] [--agent A]
//
// with the prompt on stdin: opencode run appends a piped stdin to its
// message, and moat gives it no message on the command line, so the
// prompt is the whole message. --auto approves every permission not
// explicitly denied, because the agent runs inside a sandbox (older
// opencode called this --dangerously-skip-permissions). The PATH prefix finds an opencode that
// Ensure installed into $HOME/.local/bin, which non-interactive shells
// usually lack.
package opencode

import (
	"context"
	"time"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/npmcli"
	"github.com/moatdev/moat/sandbox"
)

// Package is the npm package Ensure installs.
const Package = "opencode-ai"

// Version is the version of Package Ensure installs unless Config.Version
// says otherwise.
const Version = "1.18.33"

// Config configures the OpenCode agent. The zero value uses opencode's
// default model and agent, and installs Version.
type Config struct {
	// Model is passed as --model, as provider/model (e.g.
	// "opencode/big-pickle", "anthropic/claude-sonnet-4-6"); empty means
	// opencode's default.
	Model string

	// Variant is passed as --variant: the model's reasoning variant (e.g.
	// "high", "max", "minimal"); empty means the model's default.
	Variant string

	// Agent is passed as --agent: the opencode agent to run (e.g. "build",
	// "plan", or one of the project's own); empty means opencode's default.
	Agent string

	// Version is the version of Package Ensure installs; empty means
	// Version, "latest" lets npm pick.
	Version string

	// Binary is the opencode command; empty means "opencode". It may be a
	// path.
	Binary string

	// InstallCommand, when set, replaces the npm install that Ensure runs
	// when opencode is missing. It runs with sh -c in the work directory,
	// with $HOME/.local/bin on PATH; afterwards Binary must be found on
	// PATH or in $HOME/.local/bin.
	InstallCommand string

	// InstallTimeout bounds the install Ensure runs when the CLI is
	// missing; 0 means npmcli.DefaultTimeout.
	InstallTimeout time.Duration

	// NPM is the npm command Ensure installs with; empty means "npm".
	NPM string
}

// Agent is OpenCode. Create one with New.
type Agent struct {
	cfg Config
}

var _ agent.Agent = (*Agent)(nil)

// New returns an OpenCode agent for cfg.
func New(cfg Config) *Agent {
	if cfg.Binary == "" {
		cfg.Binary = "opencode"
	}
	return &Agent{cfg: cfg}
}

// Name returns "opencode".
func (a *Agent) Name() string { return "opencode" }

// CredentialEnv returns OPENCODE_API_KEY (OpenCode Zen) and the API key
// variables of the providers opencode talks to most.
func (a *Agent) CredentialEnv() []string {
	return []string{"OPENCODE_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY"}
}

func (a *Agent) tool() npmcli.Tool {
	return npmcli.Tool{
		Product: "OpenCode",
		Binary:  a.cfg.Binary,
		Package: Package,
		Version: npmcli.Pinned(a.cfg.Version, Version),
		NPM:     a.cfg.NPM,
		Install: a.cfg.InstallCommand,
		Timeout: a.cfg.InstallTimeout,
	}
}

// Ensure finds opencode in the sandbox (on PATH or in $HOME/.local/bin)
// and reports its version; when it is missing, Ensure installs Package at
// the pinned version with npm into $HOME/.local, which needs Node.js and
// npm in the sandbox but no root.
func (a *Agent) Ensure(ctx context.Context, h sandbox.Handle, progress func(line string)) error {
	return a.tool().Ensure(ctx, h, progress)
}

// Invocation returns the opencode command for prompt; see the package
// documentation.
func (a *Agent) Invocation(prompt string) (agent.Invocation, error) {
	return npmcli.Invocation("opencode", a.cfg.Binary, "run --format json --auto", prompt,
		npmcli.Option{Field: "Model", Flag: "--model", Value: a.cfg.Model},
		npmcli.Option{Field: "Variant", Flag: "--variant", Value: a.cfg.Variant},
		npmcli.Option{Field: "Agent", Flag: "--agent", Value: a.cfg.Agent})
}

// NewParser returns a parser for opencode run --format json output.
func (a *Agent) NewParser() agent.Parser { return &Parser{} }
