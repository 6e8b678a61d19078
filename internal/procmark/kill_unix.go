//go:build unix

package procmark

import "syscall"

func kill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
