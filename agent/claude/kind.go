package claude

import "github.com/moatdev/moat/agent"

// Kind describes the claude agent to the moat CLI (see agent.Kind).
var Kind = agent.Kind{
	Name:           "claude",
	Summary:        "Claude Code",
	Binary:         "claude",
	Install:        "npm " + Package,
	Credentials:    New(Config{}).CredentialEnv(),
	CredentialHelp: "a long-lived token from `claude setup-token` (for a Claude\nsubscription), or instead an API key from console.anthropic.com.",
	TakesModel:     true,
	New: func(o agent.Options) (agent.Agent, error) {
		return New(Config{Model: o.Model, InstallTimeout: o.InstallTimeout}), nil
	},
}
