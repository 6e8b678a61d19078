// Package procgroup waits for the leader of a process group in a way that
// keeps its pid, and so the group's ID, from being reused meanwhile.
package procgroup

import "syscall"

// Exit is how a process ended.
type Exit struct {
	// Code is the exit status, 128+N when killed by signal N, -1 when
	// unknown.
	Code int
	// Signal is the signal that killed it, or 0.
	Signal syscall.Signal
}
