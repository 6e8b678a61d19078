package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/internal/config"
	"github.com/moatdev/moat/internal/registry"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

type runOptions struct {
	repo              string
	sandbox           string
	network           string
	noIsolation       bool
	agent             string
	model             string
	agentCmd          string
	prompt            string
	promptFile        string
	args              []string
	env               []string
	secretEnv         []string
	maxIterations     int
	branch            string
	idleTimeout       time.Duration
	installTimeout    time.Duration
	completionTimeout time.Duration
	exitGrace         time.Duration
	copy              []string
	limits            syncLimits
	jsonOut           bool
	quiet             bool
	logFile           string
	trustConfig       bool
	// networkSet says --network was given (not taken from the config).
	networkSet bool
	// promptFromConfig says promptFile is the config's prompt_file, read
	// only as a regular file inside the repository.
	promptFromConfig bool
}

// tryExample is the first example of 'moat run --help' and of the README:
// a run that works as pasted in any repository with a commit, with no
// account, no network and no file of moat's.
const tryExample = `moat run --sandbox emulator --branch moat/try --max-iterations 1 -p try --agent command --agent-cmd 'date > moat-try.txt && git add moat-try.txt && git commit -qm "moat: try"'`

// errInterrupted marks a run stopped by Ctrl-C or SIGTERM.
var errInterrupted = errors.New("interrupted")

func newRunCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:         "run [-p PROMPT | -f FILE] [flags]",
		Annotations: map[string]string{interruptNotice: "moat: interrupted; saving the agent's work and deleting the sandbox"},
		Short:       "Run an agent in a fresh sandbox and bring its commits home",
		Long: `Creates one sandbox, syncs the repository into it, runs the agent for up to
--max-iterations iterations (stopping early when it prints the completion
signal <promise>COMPLETE</promise>), brings its commits back and merges them
into your checked-out branch (or keeps them on --branch). The sandbox is
deleted, unless the agent's work could not be brought out of it: then it
holds the only copy, so it is kept and moat prints how to fetch the work.

Ctrl-C, SIGTERM or SIGHUP stops the agent, brings its commits home (on their
moat/<run-id> branch, or --branch) and deletes the sandbox, within 25s
($MOAT_SHUTDOWN_TIMEOUT); signals within a second of the first count as
one. A second Ctrl-C, a second or more later, or the end of that time
quits at once and prints what is left and how to recover or remove it.

A run starts from your last commit: changes you have not committed are not
part of it, and moat says so in one line (moat exec includes them).
Submodules arrive empty, and moat names them. An agent whose credentials
are missing stops the run before a sandbox is made (exit 2), with what
'moat doctor' says.

Settings come from .moat/config.toml (see 'moat init'), then flags, which
win. The prompt is -p, -f, or the config's prompt_file (a file inside the
repository). A config file that sets what acts on this computer (host
hooks, env, secret_env, an ssh:// sandbox, the [exedev] lobby, key or
known_hosts) is refused (exit 2) until you trust it: see 'moat trust', or
--trust-config.

` + wrapText("Sandboxes: "+sandboxAbout()+".", 72) + `

` + emulatorIsolationHelp + `

The local sandbox's network (--network, or network in the config):
isolated, the default, is its own network namespace reaching out through
slirp4netns: connections to other machines and DNS work, this computer's
loopback services (127.0.0.1, ::1) and abstract Unix sockets (X11, D-Bus)
do not. Without a working slirp4netns moat refuses to start rather than
fall back (install slirp4netns, or choose). none is no network at all;
host shares this computer's network, all of it, and the status line says
so. A config file's network = "host" must be trusted.

Credentials: the keys in .moat/.env (an empty value takes your
environment's), the agent's usual variables ('moat doctor' names them),
--env and --secret-env reach the sandbox's environment over SSH stdin,
never a command line there. KEY alone takes the value from your
environment, which keeps it off moat's own command line too.

Redacted, as [redacted] in the output, the log, --json and error messages:
the values of the agent's credential variables, of every key of
.moat/.env, of --secret-env and secret_env keys, and of --env or env keys
whose name looks secret (*_KEY, *_TOKEN, *_SECRET, *PASSWORD*,
*CREDENTIAL*, in any case); each line of a multi-line value too; values
shorter than 6 bytes are left. Nothing else: --env MODE=delbase is shown
as given.

Output: on a terminal, a status line and the agent's text and tool calls;
in a pipe, the same as plain lines. On stdout every line of the agent's
starts with "| " (its text) or "> " (a tool call) and none of moat's own
(iteration headers, the summary) does; on stderr the agent's lines start
with "  [agent stderr] ". What the agent prints, commit subjects, file
names and a sandbox's error text are shown with control characters
escaped (ESC as ^[), so no escape sequence reaches your terminal, in a
pipe or the log either. --json: one JSON event per line on stdout ending
with a "result" event (docs/json.md); -q: only what landed, what was
kept, warnings and errors. A log is written to .moat/logs/.`,
		Example: `  # Offline, on the built-in exe.dev emulator, with a stand-in agent (in any
  # repository with a commit; the agent's commit lands on the branch moat/try):
  ` + tryExample + `

  # Claude Code on exe.dev, the prompt from .moat/prompt.md, up to 5 iterations:
  moat run --max-iterations 5

  # Keep the commits on a branch instead of merging; a prompt template:
  moat run --branch agent/fix-auth -f .moat/fix.md --arg ISSUE=42

  # Machine-readable:
  moat run --json -p 'fix the flaky test' | jq -c 'select(.type=="result")'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runRun(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.repo, "repo", "", "host repository (default: the working directory)")
	f.StringVar(&o.sandbox, "sandbox", registry.DefaultSandbox(), sandboxChoices())
	addNetworkFlag(cmd, &o.network)
	addNoIsolationFlag(cmd, &o.noIsolation)
	f.StringVar(&o.agent, "agent", registry.DefaultAgent(), "the agent: "+agentChoices())
	f.StringVar(&o.model, "model", "", "model for "+agentsThat(takesModel)+` ("": the agent's default)`)
	f.StringVar(&o.agentCmd, "agent-cmd", "", "the program to run with --agent "+agentsThat(takesCommand)+" (prompt on stdin)")
	f.StringVarP(&o.prompt, "prompt", "p", "", "the prompt")
	f.StringVarP(&o.promptFile, "prompt-file", "f", "", "a file holding the prompt ({{KEY}} replaced from --arg)")
	f.StringArrayVar(&o.args, "arg", nil, "prompt argument KEY=VALUE (repeatable)")
	f.StringArrayVar(&o.env, "env", nil, "sandbox environment KEY=VALUE, or KEY to take it from your environment (repeatable)")
	f.StringArrayVar(&o.secretEnv, "secret-env", nil, "like --env, and its value is a secret: redacted in output, log, --json and errors (repeatable)")
	f.IntVar(&o.maxIterations, "max-iterations", 1, "most agent iterations")
	f.StringVar(&o.branch, "branch", "", "keep the commits on this branch instead of merging into the current one")
	f.DurationVar(&o.idleTimeout, "idle-timeout", 10*time.Minute, "fail when the agent prints nothing for this long")
	f.DurationVar(&o.installTimeout, "install-timeout", 5*time.Minute, "give up installing the agent's CLI in the sandbox (when it is missing) after this long")
	f.DurationVar(&o.completionTimeout, "completion-timeout", 60*time.Second, "after the completion signal, how long the agent may take to exit")
	f.DurationVar(&o.exitGrace, "exit-grace", moat.DefaultExitGrace, "once the agent has exited, how long its output may take to end before what it left running is stopped")
	f.StringArrayVar(&o.copy, "copy", nil, "path (from the repository root) to copy into the sandbox, e.g. node_modules (repeatable)")
	addLimitFlags(cmd, &o.limits)
	f.BoolVar(&o.jsonOut, "json", false, "print newline-delimited JSON events on stdout, ending with a result event")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only what landed, what was kept, warnings and errors")
	f.BoolVar(&o.trustConfig, "trust-config", false, "trust .moat/config.toml for this run only, as 'moat trust' would (for CI)")
	f.StringVar(&o.logFile, "log-file", "", `write the run's log here (default .moat/logs/<run-id>.log, capped at 64 MiB keeping its start and end, the last 50 kept; "-" for none)`)
	registerCompletions(cmd)
	return cmd
}

// resolve applies the project's config to the options the user did not
// set on the command line: flags win, then .moat/config.toml, then defaults.
func (o *runOptions) resolve(cmd *cobra.Command, p *project) {
	c := p.Config
	set := cmd.Flags().Changed
	str := func(dst *string, flag, cfg string) {
		if !set(flag) && cfg != "" {
			*dst = cfg
		}
	}
	str(&o.sandbox, "sandbox", c.Sandbox)
	str(&o.network, "network", c.Network)
	str(&o.agent, "agent", c.Agent)
	str(&o.model, "model", c.Model)
	str(&o.agentCmd, "agent-cmd", c.AgentCmd)
	str(&o.branch, "branch", c.Branch)
	if o.prompt == "" && o.promptFile == "" && c.PromptFile != "" {
		o.promptFile = p.path(c.PromptFile)
		o.promptFromConfig = true
	}
	if !set("max-iterations") && c.MaxIterations > 0 {
		o.maxIterations = c.MaxIterations
	}
	if !set("idle-timeout") && c.IdleTimeout.Duration > 0 {
		o.idleTimeout = c.IdleTimeout.Duration
	}
	if !set("completion-timeout") && c.CompletionTimeout.Duration > 0 {
		o.completionTimeout = c.CompletionTimeout.Duration
	}
	if !set("exit-grace") && c.ExitGrace.Duration > 0 {
		o.exitGrace = c.ExitGrace.Duration
	}
	if !set("copy") {
		o.copy = c.Copy
	}
	o.limits.resolve(set, c)
}

func runRun(cmd *cobra.Command, o runOptions) error {
	ctx := cmd.Context()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	// From here on, --json ends with a result event whatever happens.
	start := time.Now()
	printer := newRunPrinter(pickMode(o.jsonOut, o.quiet, out, errOut), out, errOut)
	res, err := startRun(cmd, o, printer, start)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", errInterrupted, err)
	}
	printer.Finish(res, time.Since(start), err)
	return err
}

// startRun checks the options, applies the config and runs.
func startRun(cmd *cobra.Command, o runOptions, printer *runPrinter, start time.Time) (*moat.RunResult, error) {
	ctx := cmd.Context()
	errOut := cmd.ErrOrStderr()
	if o.jsonOut && o.quiet {
		return nil, usageErrorf("--json and -q cannot be used together: --json already prints nothing but the event stream on stdout")
	}
	if o.prompt != "" && o.promptFile != "" {
		return nil, usageErrorf("give -p PROMPT or -f FILE, not both")
	}
	p, err := loadProject(ctx, o.repo)
	if err != nil {
		return nil, err
	}
	// What acts on the host waits for the user's trust: stop before
	// anything runs.
	if err := p.requireTrust(p.Config.HostSettings(), o.trustConfig, true); err != nil {
		return nil, err
	}
	o.networkSet = cmd.Flags().Changed("network")
	o.resolve(cmd, p)
	if err := o.checkAgentCmd(cmd.Flags().Changed, p.Config); err != nil {
		return nil, err
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	if err := checkCopy(p.Root, o.copy); err != nil {
		return nil, err
	}
	if o.promptFromConfig {
		// Read here, inside the repository only, and handed over as text:
		// no symbolic link out, and nothing swapped in between.
		rel, err := filepath.Rel(p.Root, o.promptFile)
		if err != nil {
			return nil, usageErrorf("prompt_file: %w", err)
		}
		data, err := config.ReadRepoFile(p.Root, filepath.ToSlash(rel))
		if err != nil {
			return nil, usageErrorf("prompt_file: %w", err)
		}
		o.prompt, o.promptFile = string(data), ""
	}
	ag, err := pickAgent(o.agent, agent.Options{Model: o.model, Command: o.agentCmd, InstallTimeout: o.installTimeout})
	if err != nil {
		return nil, err
	}
	env, secretEnv, warnings, err := sandboxEnv(p, o.env, o.secretEnv, ag.CredentialEnv())
	if err != nil {
		return nil, err
	}
	// An agent without its credentials would fail in the sandbox, after
	// its install: stop now, with what moat doctor says.
	if keys := ag.CredentialEnv(); len(keys) > 0 && !slices.ContainsFunc(keys, func(k string) bool {
		return strings.TrimSpace(env[k]) != "" || strings.TrimSpace(secretEnv[k]) != ""
	}) {
		msg, fix := missingCredentials(ag.Name(), keys, p, true)
		return nil, usageErrorf("%s\n  %s (or pass one with --secret-env KEY)", msg, fix)
	}
	promptArgs := map[string]string{}
	for _, a := range o.args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--arg %q: want KEY=VALUE", a)
		}
		promptArgs[k] = v
	}
	// A placeholder with no value is bad input: refused before anything
	// starts, as the run itself would refuse it later.
	promptText := o.prompt
	if o.promptFile != "" {
		data, err := os.ReadFile(o.promptFile)
		if err != nil {
			return nil, usageErrorf("prompt file: %w", err)
		}
		promptText = string(data)
	}
	if err := moat.CheckPrompt(promptText, promptArgs); err != nil {
		return nil, &usageError{err}
	}
	// With --json, stdout carries only the event stream; notices go to
	// stderr (and vanish with -q).
	notices := errOut
	if printer.mode == modeQuiet {
		notices = io.Discard
	}
	if o.branch != "" {
		if err := hostgit.CheckBranchName(ctx, p.Root, o.branch); err != nil {
			return nil, usageErrorf("--branch: %w", err)
		}
	}
	if err := p.requireCommit(ctx); err != nil {
		return nil, err
	}
	for _, w := range warnings {
		fmt.Fprintf(errOut, "moat: warning: %s\n", w)
	}
	// A provider's warnings are the run's: printed like moat's own (and
	// in --json as warning events).
	warn := func(text string) { printer.Event(moat.Event{Kind: moat.EventWarning, Time: time.Now(), Text: text}) }
	opened, err := pickSandbox(ctx, sandboxChoice{o.sandbox, o.network, o.noIsolation}, p, notices, warn)
	if err != nil {
		return nil, err
	}
	defer opened.Close()
	if h, ok := opened.Provider.(sandbox.Holder); ok {
		// One connection for the look at the leftovers and the run.
		if release, err := h.Hold(); err == nil {
			defer release()
		}
	}
	noteLeftovers(ctx, notices, p.Root, opened.Provider)
	left := &leftovers{fp: &moat.Footprint{}, p: p, opened: opened}
	quitReportOf(ctx).set(func(why string) string {
		printer.Abandon(&moat.RunResult{RunID: left.fp.RunID(), Kept: left.kept()}, time.Since(start),
			fmt.Errorf("%w: %s: quit at once, without cleaning up", errInterrupted, why))
		return left.text()
	})

	res, err := moat.Run(ctx, moat.RunOptions{
		Repo:              o.repo,
		Sandbox:           opened.Provider,
		Agent:             ag,
		Prompt:            o.prompt,
		PromptFile:        o.promptFile,
		PromptArgs:        promptArgs,
		MaxIterations:     o.maxIterations,
		Branch:            o.branch,
		Env:               env,
		SecretEnv:         secretEnv,
		Hooks:             moat.Hooks{OnWorktreeReady: p.Config.Hooks.OnWorktreeReady, OnSandboxReady: p.Config.Hooks.OnSandboxReady},
		IdleTimeout:       o.idleTimeout,
		CompletionTimeout: o.completionTimeout,
		ExitGrace:         o.exitGrace,
		CopyToWorktree:    o.copy,
		MaxFileBytes:      o.limits.fileBytes.n,
		MaxSyncBytes:      o.limits.syncBytes.n,
		MaxSyncFiles:      o.limits.files,
		LogFile:           o.logFile,
		OnEvent:           printer.Event,
		Footprint:         left.fp,
	})
	if why := opened.Kind.EndsWithProgram; res != nil && res.Sandbox != nil && why != "" {
		// The sandbox ends with moat (an in-process emulator's VM): none
		// can be kept, so the work is copied out of it now.
		saveEndingWork(ctx, res, p.Root, opened.Spec, why, warn)
	}
	if res != nil && res.Sandbox != nil {
		for i, k := range res.Kept {
			if k.What == "sandbox" && res.Sandbox != nil {
				res.Kept[i].Fix = left.sandboxFix(res.Sandbox, k.Fix)
			}
		}
	}
	return res, err
}

// checkAgentCmd decides what --agent-cmd means: alone it chooses the
// agent that runs a command (as in moat init); with another --agent, or
// in a config whose agent runs none, it is refused.
func (o *runOptions) checkAgentCmd(set func(string) bool, c config.Config) error {
	runsCommand := func(name string) bool { k, _ := registry.Agents.Lookup(name); return k.TakesCommand }
	switch {
	case set("agent-cmd") && !set("agent"):
		o.agent = commandAgent()
	case set("agent-cmd") && !runsCommand(o.agent):
		return usageErrorf("--agent-cmd is for --agent %s, not --agent %s: drop one of them", agentsThat(takesCommand), o.agent)
	case !set("agent") && !set("agent-cmd") && c.AgentCmd != "" && c.Agent != "" && !runsCommand(c.Agent):
		return usageErrorf("agent_cmd in %s is for agent = %q, not agent = %q: drop one of them", config.File, commandAgent(), c.Agent)
	}
	return nil
}

// saveEndingWork copies the work out of a sandbox that the run kept but
// that ends when moat exits (why says so), into a bundle under
// .moat/kept/: no "kept sandbox" can be offered. When that fails, the
// sandbox's files stay on this computer after moat exits (the emulator
// keeps a VM tagged kept), and the result says how to recover them.
func saveEndingWork(ctx context.Context, res *moat.RunResult, root, spec, why string, warn func(string)) {
	// In .moat/kept/, which git status does not show (hostgit's excludes).
	dst := filepath.Join(root, hostgit.MoatDir, "kept", res.RunID+".bundle")
	err := os.MkdirAll(filepath.Dir(dst), 0o755)
	if err == nil {
		err = res.SaveKeptWork(ctx, dst)
	}
	if err == nil {
		warn(why + ", so the agent's work was copied out of it to " + dst)
	} else {
		name := "NAME"
		if n, ok := res.Sandbox.(sandbox.Named); ok {
			name = n.SandboxName()
		}
		warn(fmt.Sprintf("%s, and copying the agent's work out of it failed (%v); its files stay on this computer", why, err))
		for i, k := range res.Kept {
			if k.What == "sandbox" {
				res.Kept[i].Reason = "the agent's work could not be brought home or copied out; " + why + ", and its files stay"
				res.Kept[i].Fix = "moat sandbox recover --sandbox " + spec + " " + name + "   # brings the work home as a branch\n" +
					"moat sandbox rm --sandbox " + spec + " " + name + "   # removes it"
			}
		}
		res.Sandbox = nil // ends with moat; its files are what is kept
	}
}

// check refuses option values that cannot work, before anything starts.
func (o *runOptions) check() error {
	if o.prompt == "" && o.promptFile == "" {
		return usageErrorf("no prompt: give -p PROMPT or -f FILE, or set prompt_file in .moat/config.toml ('moat init' writes .moat/prompt.md)")
	}
	if o.promptFile != "" {
		if _, err := os.Stat(o.promptFile); err != nil {
			return usageErrorf("prompt file: %w", err)
		}
	}
	if err := config.CheckSandbox(o.sandbox); err != nil {
		return usageErrorf("--sandbox %q: %w", o.sandbox, err)
	}
	if err := checkNetwork(o.network, o.networkSet, o.sandbox); err != nil {
		return err
	}
	if err := o.limits.check(); err != nil {
		return err
	}

	var err error
	if o.noIsolation, err = checkNoIsolation(o.noIsolation, o.sandbox); err != nil {
		return err
	}
	switch {
	case o.maxIterations < 1:
		return usageErrorf("--max-iterations %d: want 1 or more", o.maxIterations)
	case o.idleTimeout <= 0:
		return usageErrorf("--idle-timeout %s: want a positive duration such as 10m", o.idleTimeout)
	case o.installTimeout <= 0:
		return usageErrorf("--install-timeout %s: want a positive duration such as 5m", o.installTimeout)
	case o.completionTimeout <= 0:
		return usageErrorf("--completion-timeout %s: want a positive duration such as 60s", o.completionTimeout)
	case o.exitGrace <= 0:
		return usageErrorf("--exit-grace %s: want a positive duration such as 5s", o.exitGrace)
	}
	return nil
}

// sandboxEnv is the sandbox's environment, in two parts: env, shown as
// given unless its key looks secret (moat.SecretKey), and secret, always
// redacted. In order, later ones winning: the agent's credential
// variables from the process environment, the keys of .moat/.env, the
// config's env and secret_env keys from the process environment, then
// --env and --secret-env flags. Secret are the credential variables,
// everything from .moat/.env and every key of secret_env and
// --secret-env, wherever its value came from. Values are never printed;
// warnings name keys only.
func sandboxEnv(p *project, envFlags, secretFlags []string, credentialKeys []string) (env, secret map[string]string, warnings []string, err error) {
	all := map[string]string{}
	secretKeys := map[string]bool{}
	for _, name := range credentialKeys {
		if v := os.Getenv(name); v != "" {
			all[name] = v
			secretKeys[name] = true
		}
	}
	for k, v := range p.Env.Values {
		all[k] = v
		secretKeys[k] = true
	}
	for _, k := range p.Env.Missing {
		warnings = append(warnings, fmt.Sprintf("%s is declared in .moat/.env with no value, and is not set in your environment; the sandbox will not have it", k))
	}
	fromFlags, err := envFlagValues(envFlags, secretFlags, secretKeys)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, list := range []struct {
		key    string
		names  []string
		secret bool
	}{{"env", p.Config.Env, false}, {"secret_env", p.Config.SecretEnv, true}} {
		for _, k := range list.names {
			secretKeys[k] = secretKeys[k] || list.secret
			if v, ok := os.LookupEnv(k); ok {
				all[k] = v
			} else if _, given := fromFlags[k]; !given {
				warnings = append(warnings, fmt.Sprintf("%s (%s in .moat/config.toml) is not set in your environment; the sandbox will not have it", k, list.key))
			}
		}
	}
	maps.Copy(all, fromFlags)
	env, secret = map[string]string{}, map[string]string{}
	for k, v := range all {
		if secretKeys[k] {
			secret[k] = v
		} else {
			env[k] = v
		}
	}
	// A value marked secret that redaction would leave says so.
	marked := append(slices.Clone(p.Config.SecretEnv), flagNames(secretFlags)...)
	slices.Sort(marked)
	for _, k := range slices.Compact(marked) {
		if v, ok := secret[k]; ok && strings.TrimSpace(v) != "" && len(strings.TrimSpace(v)) < moat.MinSecret {
			warnings = append(warnings, fmt.Sprintf("%s is a secret of fewer than %d bytes, too likely to be an ordinary word: it is not redacted", k, moat.MinSecret))
		}
	}
	return env, secret, warnings, nil
}

// envFlagValues reads --env and then --secret-env flags (KEY=VALUE, or
// KEY to take it from the process environment) and adds the keys of
// --secret-env to secretKeys.
func envFlagValues(envFlags, secretFlags []string, secretKeys map[string]bool) (map[string]string, error) {
	values := map[string]string{}
	for _, f := range []struct {
		name  string
		items []string
	}{{"--env", envFlags}, {"--secret-env", secretFlags}} {
		for _, e := range f.items {
			k, v, ok := strings.Cut(e, "=")
			if k == "" {
				// Not %q of e: what follows "=" may be a secret.
				return nil, usageErrorf("%s: an entry has no name before its =; want KEY=VALUE or KEY", f.name)
			}
			if !shell.ValidName(k) {
				return nil, usageErrorf("%s %q: not a valid variable name; use letters, digits and underscores, not starting with a digit", f.name, k)
			}
			if !ok {
				val, set := os.LookupEnv(k)
				if !set {
					return nil, usageErrorf("%s %s: %s is not set in your environment (use %s %s=VALUE)", f.name, k, k, f.name, k)
				}
				v = val
			}
			values[k] = v
			if f.name == "--secret-env" {
				secretKeys[k] = true
			}
		}
	}
	return values, nil
}

// flagNames returns the keys of KEY[=VALUE] flags.
func flagNames(items []string) []string {
	names := make([]string, len(items))
	for i, e := range items {
		names[i], _, _ = strings.Cut(e, "=")
	}
	return names
}

// addNetworkFlag defines --network, the network of the sandbox kinds that
// take one.
func addNetworkFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVar(dst, "network", "", "network of a "+networkKinds()+` sandbox: isolated (the default: its own, out through slirp4netns; this computer's loopback services and abstract sockets unreachable), none, or host (this computer's network)`)
}

// addNoIsolationFlag defines --no-isolation, the opt-out of containment
// of the kinds that take one.
func addNoIsolationFlag(cmd *cobra.Command, dst *bool) {
	var vars []string
	for _, k := range registry.Sandboxes.Kinds() {
		if k.TakesNoIsolation && k.NoIsolationVar != "" {
			vars = append(vars, k.NoIsolationVar+"=1")
		}
	}
	help := "with --sandbox " + noIsolationKinds() + ": run even where it cannot contain the sandbox (no working bubblewrap); the agent's commands then run as plain processes on this computer, as you, with a warning on every run"
	if len(vars) > 0 {
		help += " (also " + strings.Join(vars, ", ") + ")"
	}
	cmd.Flags().BoolVar(dst, "no-isolation", false, help)
}

// checkNoIsolation returns whether the sandbox of sandboxSpec may run
// uncontained: --no-isolation (flag), which only the kinds that take it
// do, or the kind's variable (sandbox.Kind.NoIsolationVar) set to 1.
func checkNoIsolation(flag bool, sandboxSpec string) (bool, error) {
	k, _ := registry.Sandboxes.Lookup(sandboxSpec)
	if flag && !k.TakesNoIsolation {
		return false, usageErrorf("--no-isolation: only --sandbox %s takes --no-isolation (this run's sandbox is %s)", noIsolationKinds(), sandboxSpec)
	}
	if k.NoIsolationVar == "" {
		return flag, nil
	}
	v, set := os.LookupEnv(k.NoIsolationVar)
	if !set || v == "" {
		return flag, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return false, usageErrorf("%s=%q: want 1 (or leave it unset)", k.NoIsolationVar, v)
	}
	return flag || on, nil
}

// checkNetwork checks a sandbox's network: set says it came from
// --network, which only the kinds that take a network do.
func checkNetwork(network string, set bool, sandboxSpec string) error {
	if network == "" {
		return nil
	}
	if err := config.CheckNetwork(network); err != nil {
		if set {
			return usageErrorf("--network %q: %w", network, err)
		}
		return usageErrorf("network = %q in %s: %w", network, config.File, err)
	}
	if set && !takesNetwork(sandboxSpec) {
		return usageErrorf("--network %s: only --sandbox %s takes --network (this run's sandbox is %s, which has its own network)", network, networkKinds(), sandboxSpec)
	}
	return nil
}

// registerCompletions completes the values of --sandbox and --agent.
func registerCompletions(cmd *cobra.Command) {
	registerSandboxCompletion(cmd)
	if cmd.Flags().Lookup("network") != nil {
		cmd.RegisterFlagCompletionFunc("network", cobra.FixedCompletions(
			[]string{"isolated\tits own network, out through slirp4netns (default)", "none\tno network", "host\tthis computer's network"}, cobra.ShellCompDirectiveNoFileComp))
	}
	registerAgentCompletion(cmd)
}

// checkCopy refuses a --copy path that is not in the repository, or that
// leads out of it through a symbolic link (as the config's copy does).
func checkCopy(root string, paths []string) error {
	for _, rel := range paths {
		if why := config.CopyProblem(root, rel); why != "" {
			return usageErrorf("--copy %q %s: copy only what is inside the repository, such as node_modules", rel, why)
		}
	}
	return nil
}
