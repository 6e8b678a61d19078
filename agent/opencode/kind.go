package opencode

import "github.com/moatdev/moat/agent"

// Kind describes the opencode agent to the moat CLI (see agent.Kind).
var Kind = agent.Kind{
	Name:           "opencode",
	Summary:        "OpenCode",
	Binary:         "opencode",
	Install:        "npm " + Package + "@" + Version,
	Credentials:    New(Config{}).CredentialEnv(),
	CredentialHelp: "an OpenCode Zen key, or the API key of the provider the model is\nfrom (one is enough).",
	TakesModel:     true,
	New: func(o agent.Options) (agent.Agent, error) {
		return New(Config{Model: o.Model, InstallTimeout: o.InstallTimeout}), nil
	},
}
