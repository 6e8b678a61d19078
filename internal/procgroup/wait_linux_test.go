package procgroup

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
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
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(c.Process.Pid) + "/stat")
	if err != nil {
		t.Fatalf("the exited process is gone before reaping: %v", err)
	}
	// pid (comm) state ...
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) == 0 || fields[0] != "Z" {
		t.Fatalf("state %q, want Z (zombie): %s", fields, stat)
	}
	var ee *exec.ExitError
	if err := reap(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("reap: %v, want exit status 3", err)
	}
}
