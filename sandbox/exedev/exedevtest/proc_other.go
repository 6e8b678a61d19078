//go:build !unix

package exedevtest

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
)

func platformSupported() error {
	return errors.New("the exe.dev emulator needs a Unix system (Linux or macOS)")
}

func setSession(cmd *exec.Cmd) {}

func signalNumber(name string) int { return 0 }

func killGroup(pgid int, sig string) error { return errors.ErrUnsupported }

func waitStatus(ps *os.ProcessState) exitInfo {
	if ps == nil {
		return exitInfo{code: 255}
	}
	return exitInfo{code: ps.ExitCode()}
}

type sandboxInfo struct{}

type machine struct{}

func (m *machine) stop() {}

func probeSandbox(dir string, log *slog.Logger) *sandboxInfo { return nil }

func (si *sandboxInfo) start(hostname, home, tmp string) (*machine, error) {
	return nil, errors.ErrUnsupported
}

func (v *vm) sweep() {}

func (v *vm) command(argv, env []string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = v.home
	return cmd
}
