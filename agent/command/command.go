// Package command runs any program as an agent: a shell command that reads
// the prompt on stdin, works in the repository, and prints what it has to
// say. Every line it writes to stdout is an EventText.
//
// It suits scripted and fake agents (a script copied into the repository, a
// wrapper around another CLI) and testing moat itself.
package command

import (
	"context"
	"errors"
	"strings"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/sandbox"
)

// Config configures the command agent.
type Config struct {
	// Command is run with sh -c in the sandbox's work directory, with the
	// prompt on stdin. Required.
	Command string
}

// Agent runs Config.Command. Create one with New.
type Agent struct {
	cfg Config
}

var _ agent.Agent = (*Agent)(nil)

// New returns a command agent for cfg.
func New(cfg Config) *Agent { return &Agent{cfg: cfg} }

// Name returns "command".
func (a *Agent) Name() string { return "command" }

// CredentialEnv returns nothing: a command gets the credentials its caller
// puts in the sandbox environment.
func (a *Agent) CredentialEnv() []string { return nil }

var errNoCommand = errors.New("command agent: no command to run (Config.Command is empty)")

// Ensure checks only that there is a command: it may be a script that is
// not in the sandbox yet (one that arrives with the repository, say), so
// nothing is looked up.
func (a *Agent) Ensure(ctx context.Context, h sandbox.Handle, progress func(line string)) error {
	if strings.TrimSpace(a.cfg.Command) == "" {
		return errNoCommand
	}
	return nil
}

// Invocation returns the command, with prompt on stdin.
func (a *Agent) Invocation(prompt string) (agent.Invocation, error) {
	if strings.TrimSpace(a.cfg.Command) == "" {
		return agent.Invocation{}, errNoCommand
	}
	return agent.Invocation{Cmd: a.cfg.Command, Stdin: prompt}, nil
}

// NewParser returns a parser that makes every line an EventText.
func (a *Agent) NewParser() agent.Parser { return parser{} }

type parser struct{}

// Parse returns line, as it is, as an EventText; blank lines too, so that
// the text keeps its shape.
func (parser) Parse(line string) []agent.Event {
	return []agent.Event{{Kind: agent.EventText, Text: line}}
}
