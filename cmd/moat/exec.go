package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/internal/safetext"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
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
	f.StringVar(&o.sandbox, "sandbox", "exedev", "exedev, emulator, local or ssh://[user@]host[:port]")
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
	if o.keep && o.sandbox == "emulator" {
		// Nothing to keep: the in-process emulator, and its VM, end with moat.
		return fail(usageErrorf("--keep with --sandbox emulator: the emulator runs inside moat and its VM ends when moat exits, so none can be kept; run 'moat dev exedev' and use --sandbox exedev to keep one"))
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
	provider, emu, stop, err := pickSandbox(ctx, sandboxChoice{o.sandbox, o.network, o.noIsolation}, p, notices, writerWarnings(errOut))
	if err != nil {
		return fail(err)
	}
	defer stop()

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
	left := &leftovers{fp: &moat.Footprint{}, spec: o.sandbox, p: p, emu: emu, noWork: true}
	quitReportOf(ctx).set(func(string) string { return left.text() })
	start := time.Now()
	res, err := moat.Exec(ctx, moat.ExecOptions{
		Repo: o.repo, Sandbox: provider, Command: command, Env: env, SecretEnv: secretEnv,
		Stdin: stdin, Stdout: out, Stderr: errOut,
		CommittedOnly: o.committed, Keep: o.keep,
		OnStatus:  func(s string) { fmt.Fprintf(notices, "· %s\n", safetext.String(s)) },
		Footprint: left.fp,
		OnWarning: writerWarnings(errOut),
	})
	if res != nil && res.Sandbox != nil {
		fmt.Fprint(errOut, keptSandboxHelp(res.Sandbox, o.sandbox, exedevConfig(p.Config.ExeDev)))
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

// noForwarding are the ssh options that turn off agent, X11 and port
// forwarding.
const noForwarding = "-a -x -o ClearAllForwardings=yes"

// sandboxAccess says how a person reaches and removes a sandbox moat kept.
type sandboxAccess struct {
	ssh    string // an ssh command line to the sandbox ("" when it is local)
	reach  string // what to type to get there
	remove string // what to type to remove it
}

// keptSandboxAccess works out sandboxAccess for h; spec is the --sandbox
// value and ex the exe.dev configuration moat used.
func keptSandboxAccess(h sandbox.Handle, spec string, ex exedev.Config) sandboxAccess {
	q := shell.Quote
	if eh, ok := h.(*exedev.Handle); ok {
		vm := eh.VM()
		dest := vm.SSHHost
		if vm.SSHUser != "" {
			dest = vm.SSHUser + "@" + dest
		}
		// The agent ran in there and may have left a process behind: never
		// hand it the user's SSH agent, X display or a port forward, whatever
		// ~/.ssh/config says. And VMs present the lobby's host key, so
		// check it against the lobby's entry rather than trust a new one.
		opts := noForwarding + " -o StrictHostKeyChecking=yes -o HostKeyAlias=" + q(lobbyHostKeyName(ex.Lobby))
		if ex.KnownHostsFile != "" {
			opts += " -o UserKnownHostsFile=" + q(ex.KnownHostsFile)
		}
		if ex.IdentityFile != "" {
			opts += " -i " + q(ex.IdentityFile)
		}
		if vm.SSHPort != 0 && vm.SSHPort != 22 {
			opts += fmt.Sprintf(" -p %d", vm.SSHPort)
		}
		ssh := "ssh " + opts + " " + q(dest)
		return sandboxAccess{ssh: ssh, reach: ssh, remove: "moat sandbox rm " + q(vm.Name)}
	}
	if strings.HasPrefix(spec, "ssh://") {
		// OpenSSH takes the ssh:// form as it is, port included.
		ssh := "ssh " + noForwarding + " " + q(spec)
		return sandboxAccess{ssh: ssh, reach: ssh + ", then cd " + q(h.WorkDir()), remove: ssh + " " + q("rm -rf -- "+q(h.WorkDir()))}
	}
	if d, ok := h.(interface{ Dir() string }); ok {
		// A local sandbox: all of its directory, also what the agent made
		// read-only.
		return sandboxAccess{reach: "cd " + q(h.WorkDir()), remove: "chmod -R u+w -- " + q(d.Dir()) + " && rm -rf -- " + q(d.Dir())}
	}
	return sandboxAccess{reach: "cd " + q(h.WorkDir()), remove: "rm -rf -- " + q(h.WorkDir())}
}

// lobbyHostKeyName is the lobby's name in known_hosts: "exe.dev", or
// "[host]:port" on another port.
func lobbyHostKeyName(lobby string) string {
	if lobby == "" {
		lobby = exedev.DefaultLobby
	}
	if _, _, err := net.SplitHostPort(lobby); err != nil {
		lobby = net.JoinHostPort(lobby, "22")
	}
	return knownhosts.Normalize(lobby)
}

// keptSandboxHelp says how to reach and remove a sandbox left running by
// --keep.
func keptSandboxHelp(h sandbox.Handle, spec string, ex exedev.Config) string {
	a := keptSandboxAccess(h, spec, ex)
	// The sandbox says where its work directory is: shown made safe.
	return fmt.Sprintf("moat: kept the sandbox; the repository is in %s\n  reach it:   %s\n  remove it:  %s\n", safetext.String(h.WorkDir()), safetext.String(a.reach), safetext.String(a.remove))
}
