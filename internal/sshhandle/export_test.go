package sshhandle

import "time"

// SetLossWindow sets how long a stop after a lost connection keeps
// trying, until the test ends.
func SetLossWindow(t interface{ Cleanup(func()) }, d time.Duration) {
	old := lossWindow
	lossWindow = d
	t.Cleanup(func() { lossWindow = old })
}
