//go:build !linux

package procgroup

import (
	"os/exec"
	"syscall"
)

// WaitExited waits for c's process and reaps it: without waitid's WNOWAIT
// the pid is free again at once, a small window in which killing its group
// could hit another process that took the pid.
func WaitExited(c *exec.Cmd) (reap func() error) {
	err := c.Wait()
	return func() error { return err }
}

// WaitExitedStatus is WaitExited that also tells how the process ended.
func WaitExitedStatus(c *exec.Cmd) (Exit, func() error) {
	err := c.Wait()
	e := Exit{Code: -1}
	if ps := c.ProcessState; ps != nil {
		e.Code = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Code, e.Signal = 128+int(ws.Signal()), ws.Signal()
		}
	}
	return e, func() error { return err }
}
