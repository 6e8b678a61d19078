package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
)

func newDevCmd() *cobra.Command {
	dev := &cobra.Command{
		Use:   "dev",
		Short: "Tools for developing and trying moat offline",
	}
	dev.AddCommand(newDevExedevCmd())
	return dev
}

type devExedevOptions struct {
	addr        string
	readyDelay  time.Duration
	quota       int
	noIsolation bool
	verbose     bool
}

func newDevExedevCmd() *cobra.Command {
	var o devExedevOptions
	cmd := &cobra.Command{
		Use:     "exedev",
		Aliases: []string{"emulator"},
		Short:   "Run a local exe.dev emulator (lobby and VMs) until interrupted",
		Long: `Runs moat's exe.dev emulator on loopback: an SSH lobby that speaks exe.dev's
commands (new, ls, rm, tag, cp, whoami, help) and an SSH endpoint per VM it
creates. No exe.dev account and no network are needed.

` + emulatorIsolationHelp + `

It prints the environment that points moat at it, and plain ssh commands to
try. Ctrl-C stops it and deletes every VM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDevExedev(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:0", "lobby listen address (port 0 picks a free one)")
	f.DurationVar(&o.readyDelay, "ready-delay", 0, "how long a new VM refuses SSH, like a booting VM")
	f.IntVar(&o.quota, "quota", 0, "maximum number of VMs alive at once (0: no limit)")
	f.BoolVar(&o.noIsolation, "no-isolation", false, "run even where the emulator cannot contain its VMs (no working bubblewrap): VM commands then run as plain processes on this computer, as you, with a warning (also MOAT_EMULATOR_NO_ISOLATION=1)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log connections and commands to stderr")
	return cmd
}

func runDevExedev(cmd *cobra.Command, o devExedevOptions) error {
	noIsolation, err := checkNoIsolation(o.noIsolation, "emulator")
	if err != nil {
		return err
	}
	logLevel := slog.LevelWarn
	if o.verbose {
		logLevel = slog.LevelDebug
	}
	opts := []exedevtest.Option{
		exedevtest.WithLobbyAddr(o.addr),
		exedevtest.WithLogger(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: logLevel}))),
	}
	if o.readyDelay > 0 {
		opts = append(opts, exedevtest.WithReadyDelay(o.readyDelay))
	}
	if o.quota > 0 {
		opts = append(opts, exedevtest.WithQuota(o.quota))
	}
	if noIsolation {
		opts = append(opts, exedevtest.WithNoIsolation())
	}
	srv, err := exedevtest.Start(opts...)
	if errors.Is(err, exedevtest.ErrNoContainment) {
		return fmt.Errorf("%w; or pass --no-isolation (MOAT_EMULATOR_NO_ISOLATION=1) to run VM commands unisolated, as plain processes on this computer", err)
	}
	if err != nil {
		return fmt.Errorf("start the exe.dev emulator: %w", err)
	}
	if why := srv.Containment(); why != nil {
		writerWarnings(cmd.ErrOrStderr())(exedevtest.NoIsolationWarning(why))
	}
	printDevExedevHelp(cmd.OutOrStdout(), srv)
	<-cmd.Context().Done()
	fmt.Fprintln(cmd.ErrOrStderr(), "stopping the emulator; deleting its VMs:", len(srv.VMs()))
	return srv.Close()
}

func printDevExedevHelp(w io.Writer, srv *exedevtest.Server) {
	isolation := "each VM contained: its own PID, IPC, UTS and mount namespaces; the host's network"
	if !srv.Sandboxed() {
		isolation = "NOT ISOLATED: VM commands run as plain processes on this computer"
	}
	fmt.Fprintf(w, `exe.dev emulator running; lobby at %s (%s).

Point moat at it:
  export MOAT_EXEDEV_LOBBY=%[3]s
  export MOAT_EXEDEV_KEY=%[4]s
  export MOAT_EXEDEV_KNOWN_HOSTS=%[5]s

Try it with plain ssh:
  ssh -i %[4]s -o UserKnownHostsFile=%[5]s -o IdentitiesOnly=yes -p %[6]d 127.0.0.1 new --json
  ssh -i %[4]s -o UserKnownHostsFile=%[5]s -o IdentitiesOnly=yes -p %[6]d 127.0.0.1 ls
  VMs answer on their own port (ssh_port in the JSON) and present the lobby's host key.

Press Ctrl-C to stop; every VM is deleted.
`, srv.LobbyAddr(), isolation, srv.LobbyAddr(), srv.KeyFile(), srv.KnownHostsFile(), srv.LobbyPort())
}

// emulatorIsolationHelp says what the emulator isolates, for --help.
const emulatorIsolationHelp = `The emulator contains each VM with bubblewrap: its own PID, IPC, UTS
(hostname) and mount namespaces, so a VM sees only its own processes (a
private /proc) and cannot see or signal yours or read their environment;
its own home (/home/exedev) and /tmp; this computer's system directories
(/usr, /bin, /sbin, /lib*, /opt, /etc without secret files such as
/etc/shadow and /etc/ssh, and the directories on PATH) read-only, with no
capabilities; not your home, other homes, /root, /run or /var. The network
is NOT isolated: a VM shares this computer's network, loopback services
included. Without a working bubblewrap (apt-get install bubblewrap) and
nsenter the emulator refuses to start; --no-isolation (or
MOAT_EMULATOR_NO_ISOLATION=1) makes it run VM commands as plain processes
on this computer instead, as you, able to read and change all your files,
with a warning on every run.`
