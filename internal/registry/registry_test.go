package registry_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/internal/registry"
)

// Every registered agent describes itself as docs/adding-an-agent.md
// says: a summary, what it needs, credentials that are the agent's own,
// and an agent of its name, made from the options it takes.
func TestAgentKindsFollowTheGuide(t *testing.T) {
	for _, k := range registry.Agents.Kinds() {
		t.Run(k.Name, func(t *testing.T) {
			if k.Summary == "" {
				t.Error("no Summary")
			}
			if !k.TakesCommand && (k.Binary == "" || k.Install == "") {
				t.Errorf("Binary %q, Install %q: an agent with a CLI says which and how it is installed", k.Binary, k.Install)
			}
			if len(k.Credentials) > 0 && k.CredentialHelp == "" {
				t.Error("credentials without CredentialHelp: .moat/.env.example could not say where they come from")
			}
			if k.TakesCommand {
				if _, err := k.New(agent.Options{}); !errors.Is(err, agent.ErrNoCommand) {
					t.Errorf("New without a command: %v, want agent.ErrNoCommand", err)
				}
			}
			ag, err := k.New(agent.Options{Model: "some-model", Command: "true"})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if ag.Name() != k.Name {
				t.Errorf("the agent's Name is %q, its kind's %q", ag.Name(), k.Name)
			}
			if !slices.Equal(ag.CredentialEnv(), k.Credentials) {
				t.Errorf("the agent's CredentialEnv is %q, its kind's Credentials %q", ag.CredentialEnv(), k.Credentials)
			}
			if err := registry.Agents.Check(k.Name); err != nil {
				t.Error(err)
			}
		})
	}
	if registry.DefaultAgent() != "claude" {
		t.Errorf("the default agent is %q; moving it changes what moat run does without --agent", registry.DefaultAgent())
	}
}

// Every registered sandbox kind says how it is written and what it is,
// opens, and has doctor checks; its spec is accepted by the registry.
func TestSandboxKindsDescribeThemselves(t *testing.T) {
	for _, k := range registry.Sandboxes.Kinds() {
		t.Run(k.Name, func(t *testing.T) {
			if k.Summary == "" || k.About == "" || k.Spec == "" {
				t.Errorf("Summary %q, About %q, Spec %q: each says something", k.Summary, k.About, k.Spec)
			}
			if k.Open == nil || k.Doctor == nil {
				t.Error("no Open or no Doctor")
			}
			spec := k.Name
			if k.URL {
				spec = k.Name + "://me@example.com:2222"
			}
			if err := registry.Sandboxes.Check(spec); err != nil {
				t.Errorf("Check(%q): %v", spec, err)
			}
			if got, ok := registry.Sandboxes.Lookup(spec); !ok || got.Name != k.Name {
				t.Errorf("Lookup(%q) = %q, %v", spec, got.Name, ok)
			}
		})
	}
	if err := registry.Sandboxes.Check("ssh://"); err == nil {
		t.Error("ssh:// without a host is accepted")
	}
	if registry.DefaultSandbox() != "exedev" {
		t.Errorf("the default sandbox is %q", registry.DefaultSandbox())
	}
}
