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
	"sync"
	"syscall"
	"time"

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
	notice := "moat: interrupted; stopping"
	if c, _, err := root.Find(args); err == nil && c.Annotations[interruptNotice] != "" {
		notice = c.Annotations[interruptNotice]
	}
	bound, err := shutdownBound()
	if err != nil {
		printError(stderr, err)
		return exitUsage
	}
	quit := &quitReport{}
	ctx = withQuitReport(ctx, quit)
	// SIGHUP (the terminal closed, an ssh session dropped) is a request
	// to stop like SIGINT and SIGTERM: bring the work home, then exit.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	// A reader that went away (moat run | head) must not kill moat in the
	// middle of a run: with SIGPIPE caught, a write to the closed pipe
	// fails instead, and the run goes on to bring the work home. (Caught,
	// not ignored: the commands moat starts get the default back.)
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	defer signal.Stop(pipes)
	interrupted := make(chan struct{})
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		if !awaitInterrupt(ctx, sigs) {
			return
		}
		close(interrupted)
		fmt.Fprintf(stderr, "\n%s (at most %s; Ctrl-C again, a second or more later, quits at once and says what it leaves)\n", notice, bound)
		cancel()
		why := awaitQuit(sigs, finished, bound)
		if why == "" {
			return
		}
		fmt.Fprintf(stderr, "\nmoat: %s: quitting at once, without cleaning up\n", why)
		if text := quit.text(why); text != "" {
			fmt.Fprint(stderr, text)
		}
		os.Exit(exitInterrupted)
	}()
	err = root.ExecuteContext(ctx)
	wasInterrupted := false
	select {
	case <-interrupted:
		wasInterrupted = true
	default:
	}
	return reportError(stderr, err, wasInterrupted)
}

// Signals and shutdown. The first SIGINT or SIGTERM cancels the command,
// which then stops what it started and brings the work home (a run syncs
// the agent's work out and closes its sandbox). Signals that come with it
// are the same request: coreutils' timeout sends SIGTERM to moat and then
// to its process group, a terminal's Ctrl-C reaches every process of the
// group, a supervisor may send SIGINT and SIGTERM together. So only a
// signal at least sameInterrupt after the first quits at once, and so
// does a shutdown still going on after the bound (shutdownBound).
const (
	sameInterrupt        = time.Second
	defaultShutdownBound = 25 * time.Second
	shutdownBoundEnv     = "MOAT_SHUTDOWN_TIMEOUT"
)

// shutdownBound is how long moat may take, after the first interrupt, to
// bring the work home and clean up before it quits at once:
// $MOAT_SHUTDOWN_TIMEOUT, default 25s, below the 30s a Kubernetes pod gets
// by default.
func shutdownBound() (time.Duration, error) {
	v := os.Getenv(shutdownBoundEnv)
	if v == "" {
		return defaultShutdownBound, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, &usageError{fmt.Errorf("%s=%q: want a positive duration such as 25s", shutdownBoundEnv, v)}
	}
	return d, nil
}

// awaitInterrupt waits for the first signal; false when ctx ends first.
func awaitInterrupt(ctx context.Context, sigs <-chan os.Signal) bool {
	select {
	case <-sigs:
		return true
	case <-ctx.Done():
		return false
	}
}

// awaitQuit, called at the first signal, returns why moat must quit at once
// now: a second interrupt at least sameInterrupt after the first, or a
// shutdown longer than bound. "" when the command finished first.
func awaitQuit(sigs <-chan os.Signal, finished <-chan struct{}, bound time.Duration) string {
	first := time.Now()
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	for {
		select {
		case <-sigs:
			if time.Since(first) >= sameInterrupt {
				return "interrupted again"
			}
			// The same request, delivered twice.
		case <-deadline.C:
			return fmt.Sprintf("still not done %s after the interrupt (%s)", bound, shutdownBoundEnv)
		case <-finished:
			return ""
		}
	}
}

// quitReport says what quitting at once would leave behind: the running
// command sets it, the signal handler prints it.
type quitReport struct {
	mu     sync.Mutex
	report func(why string) string
}

// set makes f say what is left when moat quits at once for the reason
// why; f must be safe to call from another goroutine while the command
// runs.
func (q *quitReport) set(f func(why string) string) {
	q.mu.Lock()
	q.report = f
	q.mu.Unlock()
}

func (q *quitReport) text(why string) string {
	q.mu.Lock()
	f := q.report
	q.mu.Unlock()
	if f == nil {
		return ""
	}
	return f(why)
}

type quitReportKey struct{}

func withQuitReport(ctx context.Context, q *quitReport) context.Context {
	return context.WithValue(ctx, quitReportKey{}, q)
}

// quitReportOf is the command's quitReport; a detached one when there is
// none (a command run from a test).
func quitReportOf(ctx context.Context) *quitReport {
	if q, ok := ctx.Value(quitReportKey{}).(*quitReport); ok {
		return q
	}
	return &quitReport{}
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
	// Errors wrapped on their way up each say where they came from; the
	// program's name once is enough (not "moat: recover: moat: ...").
	msg := strings.ReplaceAll(strings.TrimRight(err.Error(), " \t\r\n"), ": moat: ", ": ")
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
		Long: `moat runs an AI coding agent in a fresh, isolated sandbox — an exe.dev
microVM by default — syncs your repository in, and brings the agent's
commits back to your branch. The sandbox is always deleted afterwards.

` + wrapText("Agents (--agent): "+agentSummaries()+".", 76) + `

Get started:
  moat init                      # scaffold .moat/ (config, prompt, .env.example)
  moat doctor                    # check git, SSH keys, exe.dev and credentials
  moat run --sandbox emulator    # try it offline on the built-in exe.dev emulator
  moat run                       # run the agent on exe.dev

A repository's .moat/config.toml acts on this computer (host hooks, env,
the exe.dev lobby or key) only once you trust it: see 'moat trust'.

Exit codes: 0 success, 1 failure, 2 usage error (bad flag, argument or
config, or an untrusted config), 130 interrupted; moat exec returns its
command's status, or 125 when moat itself failed.

Signals: the first SIGINT, SIGTERM or SIGHUP stops cleanly (a run brings the
agent's work home and deletes its sandbox) within 25s, or
$MOAT_SHUTDOWN_TIMEOUT; signals within a second of it count as the same
one (timeout, a terminal, a supervisor). A second Ctrl-C a second or more
later, or the end of that time, quits at once, printing what is left and
the commands to recover or remove it.`,
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
