//go:build unix

package exedevtest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/moatdev/moat/internal/procgroup"
)

func platformSupported() error { return nil }

// setSession starts the process in a new session, as sshd does for a login
// shell: its PID is its session and process group ID.
func setSession(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
}

// signalNumber maps an SSH signal name ("KILL", "TERM", …) to its number; 0
// when unknown.
func signalNumber(name string) int {
	return int(unix.SignalNum("SIG" + strings.TrimPrefix(name, "SIG")))
}

// killGroup sends the named signal to process group pgid.
func killGroup(pgid int, sig string) error {
	n := signalNumber(sig)
	if n == 0 {
		return fmt.Errorf("unknown signal %q", sig)
	}
	return syscall.Kill(-pgid, syscall.Signal(n))
}

// waitStatus turns a finished process's state into an exit status or a
// signal name.
func waitStatus(ps *os.ProcessState) exitInfo {
	if ps == nil {
		return exitInfo{code: 255}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		name := strings.TrimPrefix(unix.SignalName(ws.Signal()), "SIG")
		if name == "" {
			name = fmt.Sprint(int(ws.Signal()))
		}
		return exitInfo{signal: name}
	}
	return exitInfo{code: ps.ExitCode()}
}

// exitOf turns procgroup's account of an exit into an exit status or a
// signal name.
func exitOf(e procgroup.Exit) exitInfo {
	if e.Signal != 0 {
		name := strings.TrimPrefix(unix.SignalName(e.Signal), "SIG")
		if name == "" {
			name = fmt.Sprint(int(e.Signal))
		}
		return exitInfo{signal: name}
	}
	if e.Code < 0 {
		return exitInfo{code: 255}
	}
	return exitInfo{code: e.Code}
}
