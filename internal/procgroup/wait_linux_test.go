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

// TestWaitExitedStatus: the exit status and the killing signal are known
// before the process is reaped.
func TestWaitExitedStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   Exit
	}{
		{"exit 3", Exit{Code: 3}},
		{"exit 0", Exit{Code: 0}},
		{"kill -s KILL $$", Exit{Code: 137, Signal: 9}},
		{"kill -s TERM $$", Exit{Code: 143, Signal: 15}},
	} {
		c := exec.Command("sh", "-c", tc.script)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		got, reap := WaitExitedStatus(c)
		if st, err := procstat.Read(c.Process.Pid); err != nil || st.Live() {
			t.Errorf("%s: not a zombie before reaping: %+v %v", tc.script, st, err)
		}
		reap()
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.script, got, tc.want)
		}
	}
}
