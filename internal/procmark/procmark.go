// Package procmark finds and kills the processes of this machine that
// carry a mark: an environment variable every process of a sandbox
// inherits (sandbox.MarkerVar), or membership of a namespace. It is how a
// sandbox's processes that left their process group (setsid, nohup,
// daemons) are found once the process that started them is gone. It reads
// /proc, so it finds nothing where there is none (not Linux).
package procmark

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// Match reports whether the process with the given PID carries a mark.
type Match func(pid int) bool

// Env matches the processes whose environment holds key=value exactly.
// A process whose environment cannot be read (another user's) does not
// match.
func Env(key, value string) Match {
	want := []byte("\x00" + key + "=" + value + "\x00")
	return func(pid int) bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		return err == nil && bytes.Contains(append([]byte{0}, b...), want)
	}
}

// Any matches what one of ms matches.
func Any(ms ...Match) Match {
	return func(pid int) bool {
		for _, m := range ms {
			if m != nil && m(pid) {
				return true
			}
		}
		return false
	}
}

// Find returns the PIDs of the live processes that match, this process
// excluded.
func Find(m Match) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || !live(pid) {
			continue
		}
		if m(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Kill sends SIGKILL to every process that matches, again until none is
// left (a process may fork while it is being killed) or about a second
// has passed, and returns how many it killed.
func Kill(m Match) int {
	n := 0
	for round := 0; round < 50; round++ {
		pids := Find(m)
		if len(pids) == 0 {
			return n
		}
		for _, pid := range pids {
			if kill(pid) == nil && round == 0 {
				n++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// live reports whether pid runs and is not a zombie (a zombie still has
// its environment until it is reaped).
func live(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// CountEnv counts, by value, the live processes whose environment sets
// key: one pass over /proc for any number of marks.
func CountEnv(key string) map[string]int {
	counts := map[string]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return counts
	}
	prefix := []byte(key + "=")
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || !live(pid) {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(b, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, prefix); ok {
				counts[string(v)]++
				break
			}
		}
	}
	return counts
}

// Supported reports whether this machine has a /proc to read.
func Supported() bool {
	_, err := os.Stat("/proc/self/environ")
	return err == nil
}
