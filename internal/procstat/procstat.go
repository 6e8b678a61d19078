// Package procstat reads a process's state, parent, group and session
// from Linux's /proc/PID/stat, for the code and tests that must see which
// processes are still alive.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat is the part of /proc/PID/stat moat looks at.
type Stat struct {
	PID, PPID, PGRP, Session int
	// State is the kernel's one-letter state: R, S, D, T, Z (zombie), ...
	State string
	// Comm is the command name, at most 15 bytes; it may hold spaces and
	// parentheses.
	Comm string
	// Start is when the process started, in clock ticks after boot: with
	// PID, it names one process, since a PID is reused but never at the
	// same tick.
	Start uint64
}

// Live reports whether the process runs, or could: it is not a zombie.
func (s Stat) Live() bool { return s.State != "Z" }

// Read returns pid's Stat. It fails when the process is gone (or has been
// reaped) and where there is no /proc.
func Read(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return parse(b)
}

// All returns the Stat of every process. Processes that exit while it
// reads are left out; it fails only when /proc cannot be listed.
func All() ([]Stat, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var all []Stat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := Read(pid); err == nil {
			all = append(all, s)
		}
	}
	if len(all) == 0 {
		return nil, errors.New("procstat: /proc lists no processes")
	}
	return all, nil
}

// parse reads "pid (comm) state ppid pgrp session ...". The name is found
// by the last ")", since it may hold ")" itself.
func parse(b []byte) (Stat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("procstat: malformed stat %q", b)
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 4 {
		return Stat{}, fmt.Errorf("procstat: short stat %q", b)
	}
	s := Stat{State: f[0], Comm: string(b[open+1 : end])}
	var errs [4]error
	s.PID, errs[0] = strconv.Atoi(strings.TrimSpace(string(b[:open])))
	s.PPID, errs[1] = strconv.Atoi(f[1])
	s.PGRP, errs[2] = strconv.Atoi(f[2])
	s.Session, errs[3] = strconv.Atoi(f[3])
	if err := errors.Join(errs[:]...); err != nil {
		return Stat{}, fmt.Errorf("procstat: stat %q: %w", b, err)
	}
	if len(f) > 19 { // field 22, starttime
		s.Start, _ = strconv.ParseUint(f[19], 10, 64)
	}
	return s, nil
}
