// Package copilot drives GitHub Copilot CLI (@github/copilot) in
// non-interactive mode with JSON-lines output.
//
// An invocation runs, in the sandbox's work directory:
//
//	PATH="$PATH:$HOME/.local/bin" copilot --output-format json --allow-all-tools --no-auto-update [--model M] [--reasoning-effort E] [--agent A]
//
// with the prompt on stdin: copilot runs a piped stdin as its prompt, so
// the prompt never goes on the command line (where -p would put it). Every
// tool is allowed because the agent runs inside a sandbox, and copilot
// refuses to run non-interactively otherwise. --no-auto-update keeps the
// version Ensure installed: copilot otherwise downloads and runs a newer
// one. The PATH prefix finds a copilot that Ensure installed into
// $HOME/.local/bin, which non-interactive shells usually lack.
//
// Copilot authenticates with a GitHub token from COPILOT_GITHUB_TOKEN,
// GH_TOKEN or GITHUB_TOKEN (in that order), or, with COPILOT_PROVIDER_*
// settings, talks to a model provider of one's own.
package copilot

import (
	"context"
	"time"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/npmcli"
	"github.com/moatdev/moat/sandbox"
)

// Package is the npm package Ensure installs.
const Package = "@github/copilot"

// Version is the version of Package Ensure installs unless Config.Version
// says otherwise.
const Version = "1.0.102"

// Efforts are the values copilot's --reasoning-effort takes.
var Efforts = []string{"none", "minimal", "low", "medium", "high", "xhigh", "max"}

// Config configures the Copilot agent. The zero value uses copilot's
// default model and effort, and installs Version.
type Config struct {
	// Model is passed as --model (e.g. "claude-sonnet-4.5", "gpt-5.4",
	// "auto"); empty means copilot's default.
	Model string

	// Effort is passed as --reasoning-effort: one of Efforts; empty means
	// the model's default.
	Effort string

	// Agent is passed as --agent: a custom agent of the repository or the
	// user; empty means copilot's own.
	Agent string

	// Version is the version of Package Ensure installs; empty means
	// Version, "latest" lets npm pick.
	Version string

	// Binary is the copilot command; empty means "copilot". It may be a
	// path.
	Binary string

	// InstallCommand, when set, replaces the npm install that Ensure runs
	// when copilot is missing. It runs with sh -c in the work directory,
	// with $HOME/.local/bin on PATH; afterwards Binary must be found on
	// PATH or in $HOME/.local/bin.
	InstallCommand string

	// InstallTimeout bounds the install Ensure runs when the CLI is
	// missing; 0 means npmcli.DefaultTimeout.
	InstallTimeout time.Duration

	// NPM is the npm command Ensure installs with; empty means "npm".
	NPM string
}

// Agent is GitHub Copilot CLI. Create one with New.
type Agent struct {
	cfg Config
}

var _ agent.Agent = (*Agent)(nil)

// New returns a Copilot agent for cfg.
func New(cfg Config) *Agent {
	if cfg.Binary == "" {
		cfg.Binary = "copilot"
	}
	return &Agent{cfg: cfg}
}

// Name returns "copilot".
func (a *Agent) Name() string { return "copilot" }

// CredentialEnv returns COPILOT_GITHUB_TOKEN, GH_TOKEN and GITHUB_TOKEN,
// the tokens copilot reads in that order, and COPILOT_PROVIDER_API_KEY
// and COPILOT_PROVIDER_BEARER_TOKEN, for a provider of one's own.
func (a *Agent) CredentialEnv() []string {
	return []string{"COPILOT_GITHUB_TOKEN", "GH_TOKEN", "GITHUB_TOKEN", "COPILOT_PROVIDER_API_KEY", "COPILOT_PROVIDER_BEARER_TOKEN"}
}

func (a *Agent) tool() npmcli.Tool {
	return npmcli.Tool{
		Product: "GitHub Copilot CLI",
		Binary:  a.cfg.Binary,
		Package: Package,
		Version: npmcli.Pinned(a.cfg.Version, Version),
		NPM:     a.cfg.NPM,
		Install: a.cfg.InstallCommand,
		Timeout: a.cfg.InstallTimeout,
	}
}

// Ensure finds copilot in the sandbox (on PATH or in $HOME/.local/bin) and
// reports its version; when it is missing, Ensure installs Package at the
// pinned version with npm into $HOME/.local, which needs Node.js and npm
// in the sandbox but no root.
func (a *Agent) Ensure(ctx context.Context, h sandbox.Handle, progress func(line string)) error {
	return a.tool().Ensure(ctx, h, progress)
}

// Invocation returns the copilot command for prompt; see the package
// documentation.
func (a *Agent) Invocation(prompt string) (agent.Invocation, error) {
	return npmcli.Invocation("copilot", a.cfg.Binary, "--output-format json --allow-all-tools --no-auto-update", prompt,
		npmcli.Option{Field: "Model", Flag: "--model", Value: a.cfg.Model},
		npmcli.Option{Field: "Effort", Flag: "--reasoning-effort", Value: a.cfg.Effort, OneOf: Efforts, What: "effort"},
		npmcli.Option{Field: "Agent", Flag: "--agent", Value: a.cfg.Agent})
}

// NewParser returns a parser for copilot --output-format json output.
func (a *Agent) NewParser() agent.Parser { return &Parser{} }
