package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/internal/registry"
	"github.com/moatdev/moat/internal/safetext"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/sandbox"
)

type execOptions struct {
	repo        string
	sandbox     string
	network     string
	noIsolation bool
	env         []string
	secretEnv   []string
	keep        bool
	committed   bool
	quiet       bool
	trust       bool
}

func newExecCmd() *cobra.Command {
	var o execOptions
	cmd := &cobra.Command{
		Use:         "exec [flags] -- CMD [ARG...]",
		Annotations: map[string]string{interruptNotice: "moat: interrupted; stopping the command and deleting the sandbox"},
		Short:       "Run a command in a fresh sandbox holding your repository",
		Long: `Creates a fresh sandbox, syncs the repository into it (with your
uncommitted changes and untracked files, unless --committed), runs CMD
there with its output streamed, and deletes the sandbox. moat exits with
CMD's exit status; 125 when moat itself failed (CMD did not run, or its
status is unknown), 130 when interrupted.

One argument is run as a shell command line; several are quoted and run as
one command. The sandbox gets the keys of .moat/.env, --env and
--secret-env (KEY=VALUE, or KEY to take it from your environment), like a
run. moat's own messages redact what a run redacts (.moat/.env,
--secret-env and secret_env values, and those of --env keys that look
secret: *_KEY, *_TOKEN, *_SECRET, *PASSWORD*, *CREDENTIAL*); CMD's output
is passed through untouched, byte for byte: it is yours.
With --keep the sandbox is left running and moat prints how to reach it.
--sandbox emulator contains its VMs with bubblewrap (own PID, IPC, UTS and
mount namespaces, own home and /tmp, system directories read-only; NOT the
network) and refuses to run without it unless --no-isolation: see
'moat dev exedev --help'.
A .moat/config.toml that sets what acts on this computer must be trusted
first ('moat trust', or --trust-config); untrusted, moat exits 2.`,
		Example: `  # Run the tests in a clean exe.dev VM:
  moat exec -- go test ./...

  # A shell pipeline, on the built-in emulator, committed state only:
  moat exec --sandbox emulator --committed -- 'make build && ls -l bin'

  # Keep the VM to look around afterwards:
  moat exec --keep -- npm ci`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error { return runExec(cmd, o, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.repo, "repo", "", "host repository (default: the working directory)")
	f.StringVar(&o.sandbox, "sandbox", registry.DefaultSandbox(), sandboxChoices())
	addNetworkFlag(cmd, &o.network)
	addNoIsolationFlag(cmd, &o.noIsolation)
	f.StringArrayVar(&o.env, "env", nil, "sandbox environment KEY=VALUE, or KEY to take it from your environment (repeatable)")
	f.StringArrayVar(&o.secretEnv, "secret-env", nil, "like --env, and its value is a secret: redacted in moat's errors (repeatable)")
	f.BoolVar(&o.keep, "keep", false, "leave the sandbox running and print how to reach it")
	f.BoolVar(&o.committed, "committed", false, "sync only committed state (HEAD), not your uncommitted changes")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the command's output and errors")
	f.BoolVar(&o.trust, "trust-config", false, "trust .moat/config.toml for this command only, as 'moat trust' would (for CI)")
	registerCompletions(cmd)
	return cmd
}

func runExec(cmd *cobra.Command, o execOptions, args []string) error {
	ctx := cmd.Context()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	fail := func(err error) error {
		if ctx.Err() != nil {
			return &exitError{code: exitInterrupted, err: err}
		}
		var ue *usageError
		if errors.As(err, &ue) {
			return err
		}
		return &exitError{code: exitExecFailed, err: err}
	}
	p, err := loadProject(ctx, o.repo)
	if err != nil {
		return fail(err)
	}
	// Untrusted settings that act on the host stop it before anything
	// runs (a usage error: exit 2).
	if err := p.requireTrust(p.Config.HostSettings(), o.trust, true); err != nil {
		return fail(err)
	}
	if !cmd.Flags().Changed("sandbox") && p.Config.Sandbox != "" {
		o.sandbox = p.Config.Sandbox
	}
	networkSet := cmd.Flags().Changed("network")
	if !networkSet {
		o.network = p.Config.Network
	}
	if err := checkNetwork(o.network, networkSet, o.sandbox); err != nil {
		return fail(err)
	}
	if kind, _ := registry.Sandboxes.Lookup(o.sandbox); o.keep && kind.EndsWithProgram != "" {
		// Nothing to keep: the sandbox ends with moat.
		return fail(usageErrorf("--keep with --sandbox %s: %s, so none can be kept; %s to keep one", o.sandbox, kind.EndsWithProgram, kind.KeepInstead))
	}
	if o.noIsolation, err = checkNoIsolation(o.noIsolation, o.sandbox); err != nil {
		return fail(err)
	}
	env, secretEnv, warnings, err := sandboxEnv(p, o.env, o.secretEnv, nil)
	if err != nil {
		return fail(err)
	}
	if err := p.requireCommit(ctx); err != nil {
		return fail(err)
	}
	notices := errOut
	if o.quiet {
		notices = io.Discard
	}
	for _, w := range warnings {
		fmt.Fprintf(notices, "moat: warning: %s\n", w)
	}
	opened, err := pickSandbox(ctx, sandboxChoice{o.sandbox, o.network, o.noIsolation}, p, notices, writerWarnings(errOut))
	if err != nil {
		return fail(err)
	}
	defer opened.Close()

	command := args[0]
	if len(args) > 1 {
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = shell.Quote(a)
		}
		command = strings.Join(quoted, " ")
	}
	var stdin io.Reader
	if f, ok := cmd.InOrStdin().(*os.File); !ok || !isTerminal(f) {
		// Piped input goes to the command; a terminal does not (no TTY in
		// the sandbox, and the command would wait on it forever).
		stdin = cmd.InOrStdin()
	}
	left := &leftovers{fp: &moat.Footprint{}, p: p, opened: opened, noWork: true}
	quitReportOf(ctx).set(func(string) string { return left.text() })
	start := time.Now()
	res, err := moat.Exec(ctx, moat.ExecOptions{
		Repo: o.repo, Sandbox: opened.Provider, Command: command, Env: env, SecretEnv: secretEnv,
		Stdin: stdin, Stdout: out, Stderr: errOut,
		CommittedOnly: o.committed, Keep: o.keep,
		OnStatus:  func(s string) { fmt.Fprintf(notices, "· %s\n", safetext.String(s)) },
		Footprint: left.fp,
		OnWarning: writerWarnings(errOut),
	})
	if res != nil && res.Sandbox != nil {
		fmt.Fprint(errOut, keptSandboxHelp(res.Sandbox))
	}
	if err != nil {
		return fail(err)
	}
	if !o.quiet {
		fmt.Fprintf(errOut, "· the command exited %d (%s in all)\n", res.ExitCode, time.Since(start).Round(100*time.Millisecond))
	}
	if res.ExitCode != 0 {
		return &exitError{code: res.ExitCode}
	}
	return nil
}

// keptSandboxAccess says how a person reaches and removes the sandbox h
// moat kept: what it says itself (sandbox.Reachable), else its WorkDir.
func keptSandboxAccess(h sandbox.Handle) sandbox.Access {
	if r, ok := h.(sandbox.Reachable); ok {
		return r.Access()
	}
	q := shell.Quote
	return sandbox.Access{Reach: "cd " + q(h.WorkDir()), Remove: "rm -rf -- " + q(h.WorkDir())}
}

// keptSandboxHelp says how to reach and remove a sandbox left running by
// --keep.
func keptSandboxHelp(h sandbox.Handle) string {
	a := keptSandboxAccess(h)
	// The sandbox says where its work directory is: shown made safe.
	return fmt.Sprintf("moat: kept the sandbox; the repository is in %s\n  reach it:   %s\n  remove it:  %s\n", safetext.String(h.WorkDir()), safetext.String(a.Reach), safetext.String(a.Remove))
}
