// Package gemini drives Gemini CLI (@google/gemini-cli) in headless mode
// with its JSON-lines stream output.
//
// An invocation runs, in the sandbox's work directory:
//
//	PATH="$PATH:$HOME/.local/bin" gemini --output-format stream-json --approval-mode yolo --skip-trust [-m M]
//
// with the prompt on stdin: with stdin not a terminal, gemini runs
// headless and reads its prompt from there (-p would only append to it).
// Every tool call is approved (yolo) because the agent runs inside a
// sandbox; --skip-trust trusts the work directory, which gemini otherwise
// refuses to work in headless. The PATH prefix finds a gemini that Ensure
// installed into $HOME/.local/bin, which non-interactive shells usually
// lack.
package gemini

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/npmcli"
	"github.com/moatdev/moat/sandbox"
)

// Package is the npm package Ensure installs.
const Package = "@google/gemini-cli"

// Version is the version of Package Ensure installs unless Config.Version
// says otherwise.
const Version = "0.61.0"

// ApprovalModes are the values gemini's --approval-mode takes.
var ApprovalModes = []string{"yolo", "auto_edit", "default", "plan"}

// Config configures the Gemini CLI agent. The zero value uses gemini's
// default model, approves every tool call, and installs Version.
type Config struct {
	// Model is passed as -m (e.g. "gemini-2.5-pro"); empty means gemini's
	// default.
	Model string

	// ApprovalMode is passed as --approval-mode: one of ApprovalModes.
	// Empty means "yolo", every tool call approved; "auto_edit" approves
	// edits only and "plan" is read-only, so that headless gemini refuses
	// the other tools rather than waiting for a human.
	ApprovalMode string

	// Version is the version of Package Ensure installs; empty means
	// Version, "latest" lets npm pick.
	Version string

	// Binary is the gemini command; empty means "gemini". It may be a path.
	Binary string

	// InstallCommand, when set, replaces the npm install that Ensure runs
	// when gemini is missing. It runs with sh -c in the work directory,
	// with $HOME/.local/bin on PATH; afterwards Binary must be found on
	// PATH or in $HOME/.local/bin.
	InstallCommand string

	// InstallTimeout bounds the install Ensure runs when the CLI is
	// missing; 0 means npmcli.DefaultTimeout.
	InstallTimeout time.Duration

	// NPM is the npm command Ensure installs with; empty means "npm".
	NPM string
}

// Agent is Gemini CLI. Create one with New.
type Agent struct {
	cfg Config
}

var _ agent.Agent = (*Agent)(nil)

// New returns a Gemini CLI agent for cfg.
func New(cfg Config) *Agent {
	if cfg.Binary == "" {
		cfg.Binary = "gemini"
	}
	return &Agent{cfg: cfg}
}

// Name returns "gemini".
func (a *Agent) Name() string { return "gemini" }

// CredentialEnv returns GEMINI_API_KEY and GOOGLE_API_KEY (the latter for
// Vertex AI).
func (a *Agent) CredentialEnv() []string {
	return []string{"GEMINI_API_KEY", "GOOGLE_API_KEY"}
}

func (a *Agent) tool() npmcli.Tool {
	return npmcli.Tool{
		Product: "Gemini CLI",
		Binary:  a.cfg.Binary,
		Package: Package,
		Version: npmcli.Pinned(a.cfg.Version, Version),
		NPM:     a.cfg.NPM,
		Install: a.cfg.InstallCommand,
		Timeout: a.cfg.InstallTimeout,
	}
}

// Ensure finds gemini in the sandbox (on PATH or in $HOME/.local/bin) and
// reports its version; when it is missing, Ensure installs Package at the
// pinned version with npm into $HOME/.local, which needs Node.js and npm
// in the sandbox but no root.
func (a *Agent) Ensure(ctx context.Context, h sandbox.Handle, progress func(line string)) error {
	return a.tool().Ensure(ctx, h, progress)
}

// Invocation returns the gemini command for prompt; see the package
// documentation.
func (a *Agent) Invocation(prompt string) (agent.Invocation, error) {
	mode := a.cfg.ApprovalMode
	if mode == "" {
		mode = "yolo"
	}
	if !slices.Contains(ApprovalModes, mode) {
		return agent.Invocation{}, fmt.Errorf("gemini: unknown approval mode %q: use one of %s", mode, strings.Join(ApprovalModes, ", "))
	}
	return npmcli.Invocation("gemini", a.cfg.Binary, "--output-format stream-json --approval-mode "+mode+" --skip-trust", prompt,
		npmcli.Option{Field: "Model", Flag: "-m", Value: a.cfg.Model})
}

// NewParser returns a parser for gemini's stream-json output.
func (a *Agent) NewParser() agent.Parser { return &Parser{} }
