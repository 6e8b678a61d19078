//go:build !linux

package exedevtest

import (
	"errors"
	"log/slog"
	"os/exec"
)

// Outside Linux there is no bubblewrap: VM commands run as plain processes
// (and outside Unix the emulator does not start at all).

type sandboxInfo struct{ path string }

type machine struct{}

func (m *machine) stop() {}

func (m *machine) release() {}

func probeSandbox(dir string, log *slog.Logger) (*sandboxInfo, error) {
	return nil, &NoContainmentError{Reason: "VMs are contained only on Linux (bubblewrap and nsenter)"}
}

func (si *sandboxInfo) start(hostname, home, tmp string) (*machine, error) {
	return nil, errors.ErrUnsupported
}

// sweep has no portable way to find daemons that left their process group;
// the sessions' groups are killed by killAll.
func (v *vm) sweep() {}

func (v *vm) signalTarget(cmd *exec.Cmd) func() int {
	pid := cmd.Process.Pid
	return func() int { return pid }
}

func (v *vm) command(argv, env []string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = v.home
	return cmd
}

func (v *vm) visible(p string) bool { return true }
