package codex

import "github.com/moatdev/moat/agent"

// Kind describes the codex agent to the moat CLI (see agent.Kind).
var Kind = agent.Kind{
	Name:           "codex",
	Summary:        "OpenAI Codex CLI",
	Binary:         "codex",
	Install:        "npm " + Package,
	Credentials:    New(Config{}).CredentialEnv(),
	CredentialHelp: "an API key from platform.openai.com.",
	TakesModel:     true,
	New: func(o agent.Options) (agent.Agent, error) {
		return New(Config{Model: o.Model, InstallTimeout: o.InstallTimeout}), nil
	},
}
