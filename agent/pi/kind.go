package pi

import "github.com/moatdev/moat/agent"

// Kind describes the pi agent to the moat CLI (see agent.Kind).
var Kind = agent.Kind{
	Name:           "pi",
	Summary:        "pi coding agent",
	Binary:         "pi",
	Install:        "npm " + Package + "@" + Version,
	Credentials:    New(Config{}).CredentialEnv(),
	CredentialHelp: "the API key of the provider pi talks to (one is enough).",
	TakesModel:     true,
	New: func(o agent.Options) (agent.Agent, error) {
		return New(Config{Model: o.Model, InstallTimeout: o.InstallTimeout}), nil
	},
}
