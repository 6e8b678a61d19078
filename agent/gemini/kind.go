package gemini

import "github.com/moatdev/moat/agent"

// Kind describes the gemini agent to the moat CLI (see agent.Kind).
var Kind = agent.Kind{
	Name:           "gemini",
	Summary:        "Gemini CLI",
	Binary:         "gemini",
	Install:        "npm " + Package + "@" + Version,
	Credentials:    New(Config{}).CredentialEnv(),
	CredentialHelp: "an API key from aistudio.google.com (GOOGLE_API_KEY for Vertex AI).",
	TakesModel:     true,
	New: func(o agent.Options) (agent.Agent, error) {
		return New(Config{Model: o.Model, InstallTimeout: o.InstallTimeout}), nil
	},
}
