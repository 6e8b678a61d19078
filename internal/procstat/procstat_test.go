//go:build linux

package procstat

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A process whose name holds spaces and parentheses, and one that has
// exited but is not reaped yet, read as they are.
func TestRead(t *testing.T) {
	self, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self.PID != os.Getpid() || self.PPID != os.Getppid() || self.PGRP != syscall.Getpgrp() || !self.Live() {
		t.Errorf("this process: %+v; want pid %d, ppid %d, pgrp %d, live", self, os.Getpid(), os.Getppid(), syscall.Getpgrp())
	}
	if sid, _ := unix.Getsid(0); self.Session != sid {
		t.Errorf("session %d, want %d", self.Session, sid)
	}

	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(t.TempDir(), "a) b (c")
	if err := os.WriteFile(odd, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "0.3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s, err := Read(cmd.Process.Pid)
	if err != nil || s.Comm != "a) b (c" || s.PPID != os.Getpid() || !s.Live() {
		t.Errorf("child: %+v, %v; want comm %q, ppid %d, live", s, err, "a) b (c", os.Getpid())
	}
	found := false
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		found = found || (p.PID == s.PID && p.Comm == s.Comm && p.PPID == s.PPID)
	}
	if !found {
		t.Errorf("All has no %+v", s)
	}
	// Exited, not reaped: a zombie until Wait.
	deadline := time.Now().Add(10 * time.Second)
	for s.Live() && err == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		s, err = Read(cmd.Process.Pid)
	}
	if err != nil || s.State != "Z" || s.Live() {
		t.Errorf("exited child: %+v, %v; want a zombie", s, err)
	}
	cmd.Wait()
	if _, err := Read(cmd.Process.Pid); err == nil {
		t.Error("a reaped process still reads")
	}
}

func TestParseMalformed(t *testing.T) {
	for _, b := range []string{"", "12 comm S 1 1 1", "12 (x) S 1", "x (y) S 1 2 3"} {
		if s, err := parse([]byte(b)); err == nil {
			t.Errorf("parse(%q) = %+v, want an error", b, s)
		}
	}
}
