//go:build !unix

package exedevtest

import (
	"errors"
	"os"
	"os/exec"

	"github.com/moatdev/moat/internal/procgroup"
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

func exitOf(e procgroup.Exit) exitInfo {
	if e.Code < 0 {
		return exitInfo{code: 255}
	}
	return exitInfo{code: e.Code}
}
