// Command moat runs AI coding agents in isolated sandboxes (exe.dev VMs,
// SSH hosts, local bubblewrap sandboxes) and brings their commits home.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat/internal/safetext"
)

// Exit codes, documented in the README and in `moat --help`.
const (
	exitOK          = 0   // success
	exitFailure     = 1   // the command failed (run failed, checks failed, ...)
	exitUsage       = 2   // bad flags, arguments or configuration, or an untrusted config
	exitExecFailed  = 125 // moat exec: moat itself failed; CMD did not run or its status is unknown
	exitInterrupted = 130 // interrupted by Ctrl-C or SIGTERM
)

func main() { os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr)) }

// runMain runs moat with args and returns its exit code.
func runMain(args []string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	notice := "moat: interrupted; stopping (press Ctrl-C again to quit at once)"
	if c, _, err := root.Find(args); err == nil && c.Annotations[interruptNotice] != "" {
		notice = c.Annotations[interruptNotice]
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	interrupted := make(chan struct{})
	go func() {
		// The first signal cancels: runs sync the agent's work out and
		// delete their sandbox before moat exits. A second one quits now.
		select {
		case <-sigs:
		case <-ctx.Done():
			return
		}
		close(interrupted)
		fmt.Fprintln(stderr, "\n"+notice)
		cancel()
		<-sigs
		fmt.Fprintln(stderr, "moat: quitting without cleaning up")
		os.Exit(exitInterrupted)
	}()
	err := root.ExecuteContext(ctx)
	wasInterrupted := false
	select {
	case <-interrupted:
		wasInterrupted = true
	default:
	}
	return reportError(stderr, err, wasInterrupted)
}

// reportError prints err for a person and returns the exit code for it.
func reportError(stderr io.Writer, err error, interrupted bool) int {
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			printError(stderr, ee.err)
		}
		return ee.code
	}
	if err == nil {
		// Also after Ctrl-C: a run interrupted during its merge finishes
		// it, and work that landed is a success.
		return exitOK
	}
	printError(stderr, err)
	var ue *usageError
	switch {
	case interrupted:
		return exitInterrupted
	case errors.As(err, &ue):
		return exitUsage
	case strings.HasPrefix(err.Error(), "unknown command ") || strings.HasPrefix(err.Error(), "unknown shorthand flag") || strings.HasPrefix(err.Error(), "unknown flag"):
		// cobra's own usage errors, which it does not type.
		return exitUsage
	}
	return exitFailure
}

// printError prints err for a person. An error may quote what a sandbox
// printed, so each line is made safe (internal/safetext: no escape
// sequence, no carriage return).
func printError(w io.Writer, err error) {
	msg := safetext.Lines(errorText(err), "")
	if !strings.HasPrefix(msg, "moat:") {
		msg = "moat: " + msg
	}
	fmt.Fprintln(w, msg)
}

// errorText is err's message as a person reads it: without trailing
// blank space, and never ending in a colon that announces nothing (a
// command that failed without a word on stderr).
func errorText(err error) string {
	msg := strings.TrimRight(err.Error(), " \t\r\n")
	for strings.HasSuffix(msg, ":") {
		msg = strings.TrimRight(strings.TrimSuffix(msg, ":"), " \t\r\n")
	}
	return msg
}

// exitError makes moat exit with code, after printing err when it is not
// nil: how `moat exec` passes on its command's exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "moat",
		Short: "Run AI coding agents in isolated sandboxes and bring their commits home",
		Long: `moat runs an AI coding agent (Claude Code, Codex, or any command) in a fresh,
isolated sandbox — an exe.dev microVM by default — syncs your repository in,
and brings the agent's commits back to your branch. The sandbox is always
deleted afterwards.

Get started:
  moat init                      # scaffold .moat/ (config, prompt, .env.example)
  moat doctor                    # check git, SSH keys, exe.dev and credentials
  moat run --sandbox emulator    # try it offline on the built-in exe.dev emulator
  moat run                       # run the agent on exe.dev

A repository's .moat/config.toml acts on this computer (host hooks, env,
the exe.dev lobby or key) only once you trust it: see 'moat trust'.

Exit codes: 0 success, 1 failure, 2 usage error (bad flag, argument or
config, or an untrusted config), 130 interrupted; moat exec returns its
command's status, or 125 when moat itself failed.`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{fmt.Errorf("%w\nSee 'moat %s --help'.", err, strings.TrimPrefix(c.CommandPath(), "moat "))}
	})
	root.AddCommand(
		newInitCmd(),
		newRunCmd(),
		newExecCmd(),
		newSandboxCmd(),
		newDoctorCmd(),
		newTrustCmd(),
		newVersionCmd(),
		newDevCmd(),
	)
	// cobra's completion command takes the shell as a subcommand; refuse
	// anything else as a usage error instead of printing help with exit 0.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Args = usageArgs(cobra.NoArgs)
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
		}
	}
	return root
}

// interruptNotice is the annotation holding what a command prints on the
// first Ctrl-C.
const interruptNotice = "moat/interrupt-notice"

// usageArgs wraps a cobra argument check so its failure is a usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &usageError{fmt.Errorf("%w\nSee 'moat %s --help'.", err, strings.TrimPrefix(cmd.CommandPath(), "moat "))}
		}
		return nil
	}
}
