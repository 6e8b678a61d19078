//go:build !linux

package procgroup

import "os/exec"

// WaitExited waits for c's process and reaps it: without waitid's WNOWAIT
// the pid is free again at once, a small window in which killing its group
// could hit another process that took the pid.
func WaitExited(c *exec.Cmd) (reap func() error) {
	err := c.Wait()
	return func() error { return err }
}
