package procgroup

import (
	"os/exec"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WaitExited waits until c's process has exited but leaves it a zombie, so
// its pid stays taken until the returned func reaps it (c.Wait).
func WaitExited(c *exec.Cmd) (reap func() error) {
	_, reap = WaitExitedStatus(c)
	return reap
}

// WaitExitedStatus is WaitExited that also tells how the process ended,
// before it is reaped.
func WaitExitedStatus(c *exec.Cmd) (Exit, func() error) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, c.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			if err != nil {
				return Exit{Code: -1}, c.Wait // c.Wait reports the error
			}
			break
		}
	}
	return exitOf(&info), c.Wait
}

// exitOf reads si_code and si_status of a SIGCHLD siginfo: after signo,
// errno and code (three int32), the union starts at pointer alignment
// with si_pid and si_uid, then si_status.
func exitOf(info *unix.Siginfo) Exit {
	const union = (3*4 + unsafe.Sizeof(uintptr(0)) - 1) &^ (unsafe.Sizeof(uintptr(0)) - 1)
	status := *(*int32)(unsafe.Add(unsafe.Pointer(info), union+8))
	switch info.Code {
	case 1: // CLD_EXITED
		return Exit{Code: int(status)}
	case 2, 3: // CLD_KILLED, CLD_DUMPED
		return Exit{Code: 128 + int(status), Signal: syscall.Signal(status)}
	}
	return Exit{Code: -1}
}
