// Package registry is the one place that lists the agents and the sandbox
// kinds moat offers: one line each. The CLI (its flags' help, shell
// completion, `moat init`, config validation and `moat doctor`) reads
// these lists and names no agent or sandbox kind itself.
//
// Adding an agent is one new package under agent/ that declares its
// agent.Kind, plus one line here: see docs/adding-an-agent.md.
package registry

import (
	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/claude"
	"github.com/moatdev/moat/agent/codex"
	"github.com/moatdev/moat/agent/command"
	"github.com/moatdev/moat/agent/copilot"
	"github.com/moatdev/moat/agent/cursor"
	"github.com/moatdev/moat/agent/gemini"
	"github.com/moatdev/moat/agent/opencode"
	"github.com/moatdev/moat/agent/pi"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
	"github.com/moatdev/moat/sandbox/local"
	"github.com/moatdev/moat/sandbox/sshhost"
)

// Agents are the agents moat offers, in the order help texts list them;
// the first is the default.
var Agents = agent.NewRegistry(
	claude.Kind,
	codex.Kind,
	command.Kind,
	pi.Kind,
	opencode.Kind,
	copilot.Kind,
	cursor.Kind,
	gemini.Kind,
)

// DefaultAgent is the agent a run uses when neither --agent nor the
// config names one: the first registered.
func DefaultAgent() string { return Agents.Names()[0] }

// Sandboxes are the sandbox kinds moat offers, in the order help texts
// list them; the first is the default.
var Sandboxes = sandbox.NewRegistry(
	exedev.Kind,
	exedevtest.Kind,
	local.Kind,
	sshhost.Kind,
)

// DefaultSandbox is the sandbox a command uses when neither --sandbox nor
// the config names one: the first registered.
func DefaultSandbox() string { return Sandboxes.Kinds()[0].Spec }
