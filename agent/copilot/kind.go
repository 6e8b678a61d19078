package copilot

import "github.com/moatdev/moat/agent"

// Kind describes the copilot agent to the moat CLI (see agent.Kind).
var Kind = agent.Kind{
	Name:           "copilot",
	Summary:        "GitHub Copilot CLI",
	Binary:         "copilot",
	Install:        "npm " + Package + "@" + Version,
	Credentials:    New(Config{}).CredentialEnv(),
	CredentialHelp: "a GitHub token with the Copilot Requests permission (a fine-grained\npersonal access token), or GH_TOKEN / GITHUB_TOKEN.",
	TakesModel:     true,
	New: func(o agent.Options) (agent.Agent, error) {
		return New(Config{Model: o.Model, InstallTimeout: o.InstallTimeout}), nil
	},
}
