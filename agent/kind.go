package agent

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/prose"
)

// Kind describes one kind of agent to whoever lets a person choose it (the
// moat CLI, its completions, `moat init`, config validation and `moat
// doctor`), the way restic's backends describe themselves: each agent
// package declares its Kind once, and one registry lists them all. Nothing
// else needs to name the agent.
type Kind struct {
	// Name is what --agent and agent = in .moat/config.toml take, and
	// what the Agent's Name returns: "claude".
	Name string

	// Summary is one short line for help texts and shell completion,
	// naming the product: "Claude Code".
	Summary string

	// Binary is the CLI the agent runs in the sandbox ("claude"); empty
	// when it runs whatever it is told (Options.Command).
	Binary string

	// Install says in a few words how Ensure installs Binary when the
	// sandbox lacks it, for `moat doctor` and help texts: "npm
	// @anthropic-ai/claude-code@2.1.4".
	Install string

	// Credentials are the environment variables that carry the agent's
	// credentials, in the order the CLI reads them; one of them set is
	// enough. They are what the Agent's CredentialEnv returns. Empty when
	// the agent gets what its caller passes.
	Credentials []string

	// CredentialHelp says where the credentials come from, one comment
	// line or a few without the leading "# " (`moat init` writes it above
	// them in .moat/.env.example): "a long-lived token from `claude
	// setup-token`, or an API key from console.anthropic.com."
	CredentialHelp string

	// DefaultModel is the model the agent runs when Options.Model is
	// empty, for help texts; empty means the CLI's own default, unnamed.
	DefaultModel string

	// TakesModel says Options.Model means something to the agent.
	TakesModel bool

	// TakesCommand says the agent runs Options.Command, which it then
	// needs: --agent-cmd, or agent_cmd in .moat/config.toml.
	TakesCommand bool

	// New makes the agent from the person's settings. Its error says
	// what was wrong in terms of the settings (a flag, a config key).
	New func(Options) (Agent, error)
}

// Options are what a person sets about an agent, on the command line
// (--model, --agent-cmd) or in .moat/config.toml (model, agent_cmd).
type Options struct {
	// Model names the model; empty means the agent's default. Kinds that
	// do not TakesModel ignore it.
	Model string

	// Command is the program a TakesCommand kind runs with sh -c, the
	// prompt on its stdin.
	Command string

	// InstallTimeout bounds installing the agent's CLI when the sandbox
	// lacks it; 0 means the agent's default.
	InstallTimeout time.Duration
}

// ErrNoCommand is returned by the New of a TakesCommand kind when
// Options.Command is empty.
var ErrNoCommand = errors.New("no command to run")

// Registry is the list of agent kinds a program offers, in the order it
// shows them. The zero value is empty and ready to use. It is not safe
// for concurrent Register calls; register at start-up.
type Registry struct {
	kinds []Kind
}

// NewRegistry returns a registry holding kinds, in that order. It panics
// like Register.
func NewRegistry(kinds ...Kind) *Registry {
	r := &Registry{}
	for _, k := range kinds {
		r.Register(k)
	}
	return r
}

// Register adds k at the end. It panics when k has no name, no New, or
// the name of a kind already registered: registration is programming,
// not input.
func (r *Registry) Register(k Kind) {
	switch {
	case k.Name == "" || strings.ContainsAny(k.Name, " \t\n\"="):
		panic(fmt.Sprintf("agent: Register of a kind named %q", k.Name))
	case k.New == nil:
		panic("agent: Register of kind " + k.Name + " without New")
	}
	if _, dup := r.Lookup(k.Name); dup {
		panic("agent: kind " + k.Name + " registered twice")
	}
	r.kinds = append(r.kinds, k)
}

// Lookup returns the kind called name.
func (r *Registry) Lookup(name string) (Kind, bool) {
	for _, k := range r.kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// Kinds returns the registered kinds, in order.
func (r *Registry) Kinds() []Kind { return append([]Kind(nil), r.kinds...) }

// Names returns the names of the registered kinds, in order.
func (r *Registry) Names() []string {
	names := make([]string, len(r.kinds))
	for i, k := range r.kinds {
		names[i] = k.Name
	}
	return names
}

// Check returns nil when name is a registered kind, else an error that
// lists them: `want "claude", "codex" or "command"`.
func (r *Registry) Check(name string) error {
	if _, ok := r.Lookup(name); ok {
		return nil
	}
	quoted := make([]string, len(r.kinds))
	for i, k := range r.kinds {
		quoted[i] = fmt.Sprintf("%q", k.Name)
	}
	return errors.New("want " + prose.OneOf(quoted))
}

// New makes the agent of the kind called name from o.
func (r *Registry) New(name string, o Options) (Agent, error) {
	k, ok := r.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("unknown agent %q: %w", name, r.Check(name))
	}
	return k.New(o)
}
