// Command moat runs AI coding agents in isolated sandboxes (exe.dev VMs,
// SSH hosts, local bubblewrap sandboxes) and brings their commits home.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal cancels: runs sync the agent's work out and
		// delete their sandbox before moat exits. A second one quits now.
		<-sigs
		fmt.Fprintln(os.Stderr, "\nmoat: interrupted; saving the agent's work and deleting the sandbox (press Ctrl-C again to quit at once, which may leave the sandbox behind)")
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "moat: quitting without cleaning up")
		os.Exit(130)
	}()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "moat:") {
			msg = "moat: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "moat",
		Short:         "Run AI coding agents in isolated sandboxes and bring their commits home",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd(), newDevCmd())
	return root
}
