package procgroup

import (
	"errors"
	"os/exec"
	"testing"

	"github.com/moatdev/moat/internal/procstat"
)

// TestWaitExitedKeepsThePid: after WaitExited the process is a zombie
// (state Z), so its pid cannot be reused; reaping frees it and returns its
// exit status.
func TestWaitExitedKeepsThePid(t *testing.T) {
	c := exec.Command("sh", "-c", "exit 3")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	reap := WaitExited(c)
	st, err := procstat.Read(c.Process.Pid)
	if err != nil {
		t.Fatalf("the exited process is gone before reaping: %v", err)
	}
	if st.Live() {
		t.Fatalf("state %q, want Z (zombie)", st.State)
	}
	var ee *exec.ExitError
	if err := reap(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("reap: %v, want exit status 3", err)
	}
}
