package main

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/internal/config"
	"github.com/moatdev/moat/internal/prose"
	"github.com/moatdev/moat/internal/registry"
	"github.com/moatdev/moat/sandbox"
)

// What the commands say and accept about agents and sandbox kinds comes
// from registry.Agents and registry.Sandboxes, which name each once;
// nothing here names one.

// agentChoices is the --agent flag's help: "claude, codex or command".
func agentChoices() string { return prose.OneOf(registry.Agents.Names()) }

// agentsThat names, as prose, the registered agents for which f is true.
func agentsThat(f func(agent.Kind) bool) string {
	var names []string
	for _, k := range registry.Agents.Kinds() {
		if f(k) {
			names = append(names, k.Name)
		}
	}
	return prose.OneOf(names)
}

func takesModel(k agent.Kind) bool   { return k.TakesModel }
func takesCommand(k agent.Kind) bool { return k.TakesCommand }

// agentCredentialVars lists the credential variables of every registered
// agent, once each, in registration order: for help texts.
func agentCredentialVars() string {
	seen := map[string]bool{}
	var vars []string
	for _, k := range registry.Agents.Kinds() {
		for _, v := range k.Credentials {
			if !seen[v] {
				seen[v] = true
				vars = append(vars, v)
			}
		}
	}
	return strings.Join(vars, ", ")
}

// commandAgent is the first registered agent that runs a command, the
// one --agent-cmd alone chooses.
func commandAgent() string {
	for _, k := range registry.Agents.Kinds() {
		if k.TakesCommand {
			return k.Name
		}
	}
	return ""
}

// checkAgentName checks an agent name against the registry.
func checkAgentName(name string) error { return registry.Agents.Check(name) }

// pickAgent makes the agent called name. Bad settings are usage errors
// that name the flag (and the config key) to fix.
func pickAgent(name string, o agent.Options) (agent.Agent, error) {
	k, ok := registry.Agents.Lookup(name)
	if !ok {
		return nil, usageErrorf("unknown agent %q: %v", name, registry.Agents.Check(name))
	}
	ag, err := k.New(o)
	switch {
	case errors.Is(err, agent.ErrNoCommand):
		return nil, usageErrorf("--agent %s needs --agent-cmd (or agent_cmd in .moat/config.toml): the program to run; it reads the prompt on stdin", name)
	case err != nil:
		return nil, usageErrorf("--agent %s: %w", name, err)
	}
	return ag, nil
}

// agentCompletions are --agent's shell completions: each name with its
// summary.
func agentCompletions() []string {
	var out []string
	for _, k := range registry.Agents.Kinds() {
		out = append(out, k.Name+"\t"+k.Summary)
	}
	return out
}

// registerAgentCompletion completes --agent from the registry.
func registerAgentCompletion(cmd *cobra.Command) {
	if cmd.Flags().Lookup("agent") != nil {
		cmd.RegisterFlagCompletionFunc("agent", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return agentCompletions(), cobra.ShellCompDirectiveNoFileComp
		})
	}
}

// sandboxChoices is the --sandbox flag's help: "exedev, emulator, local
// or ssh://[user@]host[:port]".
func sandboxChoices() string { return prose.OneOf(registry.Sandboxes.Specs()) }

// sandboxAbout describes every sandbox kind, one "spec (about)" each, as
// prose for help texts.
func sandboxAbout() string {
	var items []string
	for _, k := range registry.Sandboxes.Kinds() {
		items = append(items, k.Spec+" ("+k.About+")")
	}
	return prose.OneOf(items)
}

// networkKinds names the sandbox kinds that take --network: "local".
func networkKinds() string {
	var names []string
	for _, k := range registry.Sandboxes.Kinds() {
		if k.TakesNetwork {
			names = append(names, k.Spec)
		}
	}
	return prose.OneOf(names)
}

// takesNetwork reports whether spec's kind takes --network.
func takesNetwork(spec string) bool {
	k, _ := registry.Sandboxes.Lookup(spec)
	return k.TakesNetwork
}

// noIsolationKinds names the sandbox kinds that take --no-isolation.
func noIsolationKinds() string {
	var names []string
	for _, k := range registry.Sandboxes.Kinds() {
		if k.TakesNoIsolation {
			names = append(names, k.Spec)
		}
	}
	return prose.OneOf(names)
}

// sandboxChoice is the sandbox a command asked for.
type sandboxChoice struct {
	spec    string // --sandbox
	network string // --network, for a kind that takes one ("" is its default)
	// noIsolation lets a kind that takes it run its sandboxes uncontained
	// where it cannot contain them (--no-isolation, or its variable).
	noIsolation bool
}

// sandboxEnvFor is what a sandbox kind gets from the project: its
// settings from .moat/config.toml, the network, and where its notices
// and warnings go.
func sandboxEnvFor(p *project, c sandboxChoice, notices io.Writer, warn func(string)) sandbox.Env {
	env := sandbox.Env{Network: c.network, NoIsolation: c.noIsolation, Notices: notices, SettingsFile: config.File}
	if p != nil {
		env.Settings = p.Config.SandboxSettings()
	}
	if warn != nil {
		env.Logger = newWarnLogger(warn)
	}
	return env
}

// pickSandbox opens the sandbox kind of spec (see sandbox.Kind.Open): its
// provider, and what came with it. A spec no kind takes is a usage error.
// The caller must call the result's Close.
func pickSandbox(ctx context.Context, c sandboxChoice, p *project, notices io.Writer, warn func(string)) (*sandbox.Opened, error) {
	if err := registry.Sandboxes.Check(c.spec); err != nil {
		return nil, usageErrorf("--sandbox %q: %w", c.spec, err)
	}
	return registry.Sandboxes.Open(ctx, c.spec, sandboxEnvFor(p, c, notices, warn))
}

// registerSandboxCompletion completes --sandbox from the registry: a URL
// kind as its scheme, to be continued.
func registerSandboxCompletion(cmd *cobra.Command) {
	if cmd.Flags().Lookup("sandbox") != nil {
		cmd.RegisterFlagCompletionFunc("sandbox", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			var out []string
			for _, k := range registry.Sandboxes.Kinds() {
				name := k.Name
				if k.URL {
					name += "://"
				}
				out = append(out, name+"\t"+k.Summary)
			}
			return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
		})
	}
}

// agentSummaries names every agent with its summary, as prose:
// "claude (Claude Code), codex (OpenAI Codex CLI) or ...".
func agentSummaries() string {
	var items []string
	for _, k := range registry.Agents.Kinds() {
		items = append(items, k.Name+" ("+k.Summary+")")
	}
	return prose.OneOf(items)
}

// wrapText breaks s into lines of at most width bytes, between words.
func wrapText(s string, width int) string {
	var b strings.Builder
	n := 0
	for _, w := range strings.Fields(s) {
		switch {
		case n == 0:
		case n+1+len(w) > width:
			b.WriteByte('\n')
			n = 0
		default:
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
