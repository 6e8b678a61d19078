package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/claude"
	"github.com/moatdev/moat/agent/codex"
	"github.com/moatdev/moat/agent/command"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
	"github.com/moatdev/moat/sandbox/local"
	"github.com/moatdev/moat/sandbox/sshhost"
)

type runOptions struct {
	repo          string
	sandbox       string
	agent         string
	model         string
	agentCmd      string
	prompt        string
	promptFile    string
	args          []string
	env           []string
	maxIterations int
	branch        string
	idleTimeout   time.Duration
	copy          []string
}

func newRunCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run (-p PROMPT | -f FILE) [flags]",
		Short: "Run an agent in a fresh sandbox and bring its commits home",
		Long: `Creates one sandbox, syncs the repository into it, runs the agent for up to
--max-iterations iterations (stopping early when it prints the completion
signal <promise>COMPLETE</promise>), brings its commits back and merges them
into your checked-out branch (or keeps them on --branch). The sandbox is
always deleted.

Sandboxes: exedev (exe.dev VM; MOAT_EXEDEV_* variables override the
defaults), emulator (the exe.dev emulator, in-process: no account, no
network), local (a temp directory, inside bubblewrap when installed),
ssh://[user@]host[:port] (a fresh directory on any SSH host).

Credentials: the variables your agent needs (e.g. ANTHROPIC_API_KEY) are
passed from your environment into the sandbox's, never on a command line.`,
		Example: `  moat run --sandbox emulator --agent command --agent-cmd 'sh agent.sh' -p 'say hello'
  moat run --sandbox exedev --agent claude -f prompt.md --max-iterations 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRun(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.repo, "repo", "", "host repository (default: the working directory)")
	f.StringVar(&o.sandbox, "sandbox", "exedev", "exedev, emulator, local or ssh://[user@]host[:port]")
	f.StringVar(&o.agent, "agent", "claude", "claude, codex or command")
	f.StringVar(&o.model, "model", "", "model for claude or codex")
	f.StringVar(&o.agentCmd, "agent-cmd", "", "the program to run with --agent command (prompt on stdin)")
	f.StringVarP(&o.prompt, "prompt", "p", "", "the prompt")
	f.StringVarP(&o.promptFile, "prompt-file", "f", "", "a file holding the prompt ({{KEY}} replaced from --arg)")
	f.StringArrayVar(&o.args, "arg", nil, "prompt argument KEY=VALUE (repeatable)")
	f.StringArrayVar(&o.env, "env", nil, "sandbox environment KEY=VALUE, or KEY to take it from your environment (repeatable)")
	f.IntVar(&o.maxIterations, "max-iterations", 1, "most agent iterations")
	f.StringVar(&o.branch, "branch", "", "keep the commits on this branch instead of merging into the current one")
	f.DurationVar(&o.idleTimeout, "idle-timeout", 10*time.Minute, "fail when the agent prints nothing for this long")
	f.StringArrayVar(&o.copy, "copy", nil, "path (from the repository root) to copy into the sandbox, e.g. .env (repeatable)")
	return cmd
}

func runRun(cmd *cobra.Command, o runOptions) error {
	ctx := cmd.Context()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	ag, err := pickAgent(o)
	if err != nil {
		return err
	}
	env, err := parseEnv(o.env, ag)
	if err != nil {
		return err
	}
	promptArgs := map[string]string{}
	for _, a := range o.args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return fmt.Errorf("--arg %q: want KEY=VALUE", a)
		}
		promptArgs[k] = v
	}
	provider, stop, err := pickSandbox(ctx, o.sandbox, errOut)
	if err != nil {
		return err
	}
	defer stop()

	start := time.Now()
	res, runErr := moat.Run(ctx, moat.RunOptions{
		Repo:           o.repo,
		Sandbox:        provider,
		Agent:          ag,
		Prompt:         o.prompt,
		PromptFile:     o.promptFile,
		PromptArgs:     promptArgs,
		MaxIterations:  o.maxIterations,
		Branch:         o.branch,
		Env:            env,
		IdleTimeout:    o.idleTimeout,
		CopyToWorktree: o.copy,
		OnEvent:        func(e moat.Event) { printEvent(out, errOut, e) },
	})
	printSummary(out, res, time.Since(start), runErr)
	return runErr
}

func pickAgent(o runOptions) (agent.Agent, error) {
	switch o.agent {
	case "claude":
		return claude.New(claude.Config{Model: o.model}), nil
	case "codex":
		return codex.New(codex.Config{Model: o.model}), nil
	case "command":
		if o.agentCmd == "" {
			return nil, errors.New("--agent command needs --agent-cmd, the program to run (it reads the prompt on stdin)")
		}
		return command.New(command.Config{Command: o.agentCmd}), nil
	}
	return nil, fmt.Errorf("unknown agent %q: use claude, codex or command", o.agent)
}

// parseEnv reads --env flags and adds the agent's credential variables that
// are set in the environment. Values are never printed.
func parseEnv(flags []string, ag agent.Agent) (map[string]string, error) {
	env := map[string]string{}
	for _, name := range ag.CredentialEnv() {
		if v := os.Getenv(name); v != "" {
			env[name] = v
		}
	}
	for _, e := range flags {
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			val, set := os.LookupEnv(k)
			if !set {
				return nil, fmt.Errorf("--env %s: %s is not set in your environment (use --env %s=VALUE)", k, k, k)
			}
			v = val
		}
		if k == "" {
			return nil, fmt.Errorf("--env %q: want KEY=VALUE or KEY", e)
		}
		env[k] = v
	}
	return env, nil
}

// pickSandbox returns the provider for --sandbox and a func that releases
// what it started (the in-process emulator).
func pickSandbox(ctx context.Context, spec string, errOut io.Writer) (sandbox.Provider, func(), error) {
	switch {
	case spec == "exedev":
		return exedev.New(exedev.ConfigFromEnv()), func() {}, nil
	case spec == "emulator":
		srv, err := exedevtest.Start()
		if err != nil {
			return nil, nil, fmt.Errorf("start the exe.dev emulator: %w", err)
		}
		fmt.Fprintf(errOut, "moat: exe.dev emulator on %s (no account, no network)\n", srv.LobbyAddr())
		return exedev.New(srv.Config()), func() { srv.Close() }, nil
	case spec == "local":
		return local.New(local.Config{}), func() {}, nil
	case strings.HasPrefix(spec, "ssh://"):
		hostPart := strings.TrimPrefix(spec, "ssh://")
		user := ""
		if i := strings.LastIndex(hostPart, "@"); i >= 0 {
			user, hostPart = hostPart[:i], hostPart[i+1:]
		}
		if hostPart == "" {
			return nil, nil, fmt.Errorf("--sandbox %s: no host (want ssh://[user@]host[:port])", spec)
		}
		return sshhost.New(sshhost.Config{Addr: hostPart, User: user}), func() {}, nil
	}
	return nil, nil, fmt.Errorf("unknown sandbox %q: use exedev, emulator, local or ssh://[user@]host[:port]", spec)
}

func printEvent(out, errOut io.Writer, e moat.Event) {
	switch e.Kind {
	case moat.EventStatus:
		fmt.Fprintf(errOut, "· %s\n", e.Text)
	case moat.EventIterationStart:
		fmt.Fprintf(out, "── %s ──\n", e.Text)
	case moat.EventText:
		fmt.Fprintln(out, e.Text)
	case moat.EventToolCall:
		fmt.Fprintf(out, "  %s(%s)\n", e.Tool, e.ToolArg)
	case moat.EventWarning:
		fmt.Fprintf(errOut, "! %s\n", e.Text)
	case moat.EventStderr:
		fmt.Fprintf(errOut, "  [agent stderr] %s\n", e.Text)
	}
}

func printSummary(w io.Writer, res *moat.RunResult, took time.Duration, runErr error) {
	if res == nil {
		return
	}
	fmt.Fprintf(w, "\n── summary (%s) ──\n", took.Round(100*time.Millisecond))
	if len(res.Phases) > 0 {
		var parts []string
		for _, p := range res.Phases {
			parts = append(parts, fmt.Sprintf("%s %s", p.Name, p.Duration.Round(time.Millisecond)))
		}
		fmt.Fprintf(w, "phases: %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "iterations: %d", len(res.Iterations))
	if res.CompletionSignal != "" {
		fmt.Fprintf(w, " (completed: %s)", res.CompletionSignal)
	}
	fmt.Fprintln(w)
	if len(res.Commits) > 0 {
		fmt.Fprintf(w, "%d commit(s) landed on %s:\n", len(res.Commits), res.Branch)
		for _, c := range res.Commits {
			fmt.Fprintf(w, "  %.10s %s\n", c.SHA, c.Subject)
		}
	} else if runErr == nil {
		fmt.Fprintf(w, "no commits (branch %s unchanged)\n", res.Branch)
	}
	for _, it := range res.Iterations {
		if it.Usage != nil {
			fmt.Fprintf(w, "tokens: %d in, %d out (cache: %d read, %d written)\n",
				it.Usage.InputTokens, it.Usage.OutputTokens, it.Usage.CacheReadInputTokens, it.Usage.CacheCreationInputTokens)
		}
	}
	for _, k := range res.Kept {
		fmt.Fprintf(w, "kept %s %s: %s\n", k.What, k.Path, k.Reason)
		if k.Fix != "" {
			fmt.Fprintf(w, "  to finish by hand:\n    %s\n", strings.ReplaceAll(k.Fix, "\n", "\n    "))
		}
	}
	if res.LogFile != "" {
		fmt.Fprintf(w, "log: %s\n", res.LogFile)
	}
}
