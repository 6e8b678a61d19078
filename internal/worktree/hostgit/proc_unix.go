//go:build unix

package hostgit

import (
	"os/exec"
	"syscall"
)

// ownGroup runs git in its own process group and makes cancellation kill
// the whole group, so hooks, gpg or ssh started by git die with it.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
