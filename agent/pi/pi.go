// Package pi drives pi, the coding agent of @mariozechner/pi-coding-agent,
// in print mode with JSON-lines output.
//
// An invocation runs, in the sandbox's work directory:
//
//	PATH="$PATH:$HOME/.local/bin" pi --print --mode json [--provider P] [--model M] [--thinking L]
//
// with the prompt on stdin: in print mode pi reads a piped stdin as its
// first message. pi asks no permissions, so there is nothing to skip. The
// PATH prefix finds a pi that Ensure installed into $HOME/.local/bin, which
// non-interactive shells usually lack.
package pi

import (
	"context"
	"time"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/npmcli"
	"github.com/moatdev/moat/sandbox"
)

// Package is the npm package Ensure installs.
const Package = "@mariozechner/pi-coding-agent"

// Version is the version of Package Ensure installs unless Config.Version
// says otherwise.
const Version = "0.73.1"

// ThinkingLevels are the values pi's --thinking takes.
var ThinkingLevels = []string{"off", "minimal", "low", "medium", "high", "xhigh"}

// Config configures the pi agent. The zero value uses pi's default
// provider, model and thinking level, and installs Version.
type Config struct {
	// Model is passed as --model: an id or pattern, "provider/id" works
	// too (e.g. "claude-sonnet-4-6", "openai/gpt-5.4"); empty means pi's
	// default.
	Model string

	// Provider is passed as --provider (e.g. "anthropic"); empty means
	// pi's default, or the provider Model names.
	Provider string

	// Thinking is passed as --thinking: one of ThinkingLevels; empty
	// means pi's default.
	Thinking string

	// Version is the version of Package Ensure installs; empty means
	// Version, "latest" lets npm pick.
	Version string

	// Binary is the pi command; empty means "pi". It may be a path.
	Binary string

	// InstallCommand, when set, replaces the npm install that Ensure runs
	// when pi is missing. It runs with sh -c in the work directory, with
	// $HOME/.local/bin on PATH; afterwards Binary must be found on PATH or
	// in $HOME/.local/bin.
	InstallCommand string

	// InstallTimeout bounds the install Ensure runs when the CLI is
	// missing; 0 means npmcli.DefaultTimeout.
	InstallTimeout time.Duration

	// NPM is the npm command Ensure installs with; empty means "npm".
	NPM string
}

// Agent is pi. Create one with New.
type Agent struct {
	cfg Config
}

var _ agent.Agent = (*Agent)(nil)

// New returns a pi agent for cfg.
func New(cfg Config) *Agent {
	if cfg.Binary == "" {
		cfg.Binary = "pi"
	}
	return &Agent{cfg: cfg}
}

// Name returns "pi".
func (a *Agent) Name() string { return "pi" }

// CredentialEnv returns the API key variables of the providers pi talks
// to most: ANTHROPIC_API_KEY, ANTHROPIC_OAUTH_TOKEN, OPENAI_API_KEY,
// GEMINI_API_KEY, OPENROUTER_API_KEY, and the rest that pi reads.
func (a *Agent) CredentialEnv() []string {
	return []string{
		"ANTHROPIC_API_KEY", "ANTHROPIC_OAUTH_TOKEN", "OPENAI_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY",
		"GROQ_API_KEY", "XAI_API_KEY", "MISTRAL_API_KEY", "DEEPSEEK_API_KEY", "CEREBRAS_API_KEY", "OPENCODE_API_KEY",
	}
}

func (a *Agent) tool() npmcli.Tool {
	return npmcli.Tool{
		Product: "pi",
		Binary:  a.cfg.Binary,
		Package: Package,
		Version: npmcli.Pinned(a.cfg.Version, Version),
		NPM:     a.cfg.NPM,
		Install: a.cfg.InstallCommand,
		Timeout: a.cfg.InstallTimeout,
	}
}

// Ensure finds pi in the sandbox (on PATH or in $HOME/.local/bin) and
// reports its version; when it is missing, Ensure installs Package at the
// pinned version with npm into $HOME/.local, which needs Node.js and npm
// in the sandbox but no root.
func (a *Agent) Ensure(ctx context.Context, h sandbox.Handle, progress func(line string)) error {
	return a.tool().Ensure(ctx, h, progress)
}

// Invocation returns the pi command for prompt; see the package
// documentation.
func (a *Agent) Invocation(prompt string) (agent.Invocation, error) {
	return npmcli.Invocation("pi", a.cfg.Binary, "--print --mode json", prompt,
		npmcli.Option{Field: "Provider", Flag: "--provider", Value: a.cfg.Provider},
		npmcli.Option{Field: "Model", Flag: "--model", Value: a.cfg.Model},
		npmcli.Option{Field: "Thinking", Flag: "--thinking", Value: a.cfg.Thinking, OneOf: ThinkingLevels, What: "thinking level"})
}

// NewParser returns a parser for pi's --mode json output.
func (a *Agent) NewParser() agent.Parser { return &Parser{} }
