package cursor

import "github.com/moatdev/moat/agent"

// Kind describes the cursor agent to the moat CLI (see agent.Kind).
var Kind = agent.Kind{
	Name:           "cursor",
	Summary:        "Cursor CLI",
	Binary:         "cursor-agent",
	Install:        "Cursor's download server (" + DownloadBase + "), version " + Version + "; not on npm",
	Credentials:    New(Config{}).CredentialEnv(),
	CredentialHelp: "an API key from the Cursor dashboard (Integrations).",
	TakesModel:     true,
	New: func(o agent.Options) (agent.Agent, error) {
		return New(Config{Model: o.Model, InstallTimeout: o.InstallTimeout}), nil
	},
}
