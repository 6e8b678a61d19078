package procgroup

import (
	"os/exec"

	"golang.org/x/sys/unix"
)

// WaitExited waits until c's process has exited but leaves it a zombie, so
// its pid stays taken until the returned func reaps it (c.Wait).
func WaitExited(c *exec.Cmd) (reap func() error) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, c.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break // on another error, c.Wait reports it
		}
	}
	return c.Wait
}
