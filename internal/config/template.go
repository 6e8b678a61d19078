package config

import (
	"fmt"
	"strings"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/internal/prose"
	"github.com/moatdev/moat/internal/registry"
)

// TemplateOptions are the choices `moat init` writes into the config file.
type TemplateOptions struct {
	Sandbox  string // "" is registry.DefaultSandbox
	Agent    string // "" is registry.DefaultAgent
	Model    string // "": the agent's default (the key is left commented out)
	AgentCmd string // for an agent that runs a command (agent.Kind.TakesCommand)
}

// DefaultMaxIterations is the max_iterations Template writes: a prompt that
// loops until the agent signals completion is the point of moat.
const DefaultMaxIterations = 5

// DefaultPromptFile is the prompt_file Template writes; `moat init`
// creates it.
const DefaultPromptFile = ".moat/prompt.md"

// Template returns the commented .moat/config.toml that `moat init` writes:
// the chosen sandbox, agent and model (and agent_cmd for the command agent)
// set, prompt_file and max_iterations set, and every other key present but
// commented out, showing its default and what it does. Load reads it back
// with the chosen values.
func Template(o TemplateOptions) string {
	if o.Sandbox == "" {
		o.Sandbox = registry.DefaultSandbox()
	}
	if o.Agent == "" {
		o.Agent = registry.DefaultAgent()
	}
	kind, _ := registry.Agents.Lookup(o.Agent)
	set := func(name, value string) string { return name + " = " + value }
	unset := func(name, value string) string { return "# " + name + " = " + value }

	model := unset("model", `""`)
	if o.Model != "" {
		model = set("model", tomlString(o.Model))
	}
	agentCmd := unset("agent_cmd", `"sh agent.sh"`)
	if kind.TakesCommand || o.AgentCmd != "" {
		agentCmd = set("agent_cmd", tomlString(o.AgentCmd))
	}

	var b strings.Builder
	w := func(lines ...string) {
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	w(
		"# moat settings for this repository, written by `moat init`.",
		"# Flags on the moat command line win over this file. A commented-out key",
		"# shows its default. Credentials never go here: put them in .moat/.env.",
		"",
		"# Where the agent runs:",
	)
	for _, k := range registry.Sandboxes.Kinds() {
		w("#   " + k.Spec + " (" + k.About + ")")
	}
	w(
		set("sandbox", tomlString(o.Sandbox)),
		"",
		"# The local sandbox's network: isolated (its own; outbound connections and DNS",
		"# go out through slirp4netns, this computer's loopback services and abstract",
		"# Unix sockets stay out of reach), none (no network at all) or host (this",
		"# computer's network, all of it; takes effect once you trust this file).",
		unset("network", `"isolated"`),
		"",
		"# The agent:",
	)
	for _, k := range registry.Agents.Kinds() {
		w("#   " + k.Name + " (" + k.Summary + ")")
	}
	w(
		set("agent", tomlString(o.Agent)),
		"",
		`# The model, for the agents that take one; "" is the agent's own default.`,
		model,
		"",
		`# The program run by `+agentsThat(func(k agent.Kind) bool { return k.TakesCommand })+`; it reads the prompt on stdin.`,
		agentCmd,
		"",
		"# The prompt, relative to the repository root. {{TARGET_BRANCH}} in it becomes",
		"# the branch the work is merged into; other {{NAME}}s come from moat run --arg.",
		set("prompt_file", tomlString(DefaultPromptFile)),
		"",
		"# The most times the agent is run on the prompt; moat stops early when the",
		"# agent prints <promise>COMPLETE</promise>. (Without this key: 1.)",
		set("max_iterations", fmt.Sprint(DefaultMaxIterations)),
		"",
		"# Stop an iteration when the agent prints nothing for this long.",
		unset("idle_timeout", `"10m"`),
		"",
		"# After the agent signals completion, how long it has to exit.",
		unset("completion_timeout", `"60s"`),
		"",
		"# Once the agent has exited, how long its output may take to end; then",
		"# what it left running in the sandbox (a background child) is stopped.",
		unset("exit_grace", `"5s"`),
		"",
		`# Keep the agent's commits on this branch; "" merges them into the branch`,
		"# checked out when the run started.",
		unset("branch", `""`),
		"",
		"# Limits on what comes home from the sandbox: the size of each new or changed",
		"# file, their total size, and how many there are. Over one, nothing comes",
		"# home and the work stays in the sandbox. Raising one takes effect once you",
		"# trust this file.",
		unset("max_file_size", `"100MiB"`),
		unset("max_sync_size", `"1GiB"`),
		unset("max_files", "100000"),
		"",
		"# Paths (from the repository root) that git does not carry, copied into the",
		`# sandbox, such as [".env.local", "node_modules"].`,
		unset("copy", "[]"),
		"",
		"# Names of variables passed from your environment into the sandbox, such as",
		`# ["GOFLAGS"]. Credentials are better listed in .moat/.env.`,
		unset("env", "[]"),
		"",
		"# The same for secrets: their values are also replaced by [redacted] in",
		`# moat's output, log and errors, such as ["DATABASE_URL"].`,
		unset("secret_env", "[]"),
		"",
		"[hooks]",
		"# Shell commands run on the host, in the run's fresh worktree.",
		unset("on_worktree_ready", "[]"),
		`# Shell commands run in the sandbox before the agent, such as ["npm ci"].`,
		unset("on_sandbox_ready", "[]"),
		"",
		"[exedev]",
		"# exe.dev settings. MOAT_EXEDEV_LOBBY, _KEY, _KNOWN_HOSTS and _IMAGE win over them.",
		"# The lobby: host[:port].",
		unset("lobby", `"exe.dev"`),
		"# Your exe.dev SSH key; by default ~/.ssh/id_exe when it exists, else what",
		"# ~/.ssh/config and your SSH agent offer.",
		unset("identity_file", `"~/.ssh/id_exe"`),
		unset("known_hosts_file", `"~/.ssh/known_hosts"`),
		`# The VM's container image; "" is exe.dev's default (exeuntu).`,
		unset("image", `""`),
		"# The VM's size; 0 and \"\" are exe.dev's defaults.",
		unset("cpu", "0"),
		unset("memory", `""  # such as "4GB"`),
		unset("disk", `""    # such as "20GB"`),
		"# Tags added to every VM moat creates.",
		unset("tags", "[]"),
		"# How long a new VM may take to accept SSH before moat deletes it and fails.",
		unset("ready_timeout", `"90s"`),
	)
	return b.String()
}

// agentsThat names, as prose, the registered agents for which f is true:
// agent = "command".
func agentsThat(f func(agent.Kind) bool) string {
	var names []string
	for _, k := range registry.Agents.Kinds() {
		if f(k) {
			names = append(names, "agent = "+tomlString(k.Name))
		}
	}
	return prose.OneOf(names)
}
