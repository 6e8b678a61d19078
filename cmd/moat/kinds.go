package main

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/internal/registry"
)

// What the commands say and accept about agents comes from
// registry.Agents, which names each agent once; nothing here names one.

// agentChoices is the --agent flag's help: "claude, codex or command".
func agentChoices() string { return agent.OneOf(registry.Agents.Names()) }

// agentsThat names, as prose, the registered agents for which f is true.
func agentsThat(f func(agent.Kind) bool) string {
	var names []string
	for _, k := range registry.Agents.Kinds() {
		if f(k) {
			names = append(names, k.Name)
		}
	}
	return agent.OneOf(names)
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
