package sshdtest

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/procstat"
)

// procTable is a snapshot of the processes.
type procTable struct {
	kids    map[int][]int // by parent
	members map[int][]int // by session ID (Linux only)
	live    map[int]bool  // not a zombie
}

// processTable takes a snapshot of the processes. It reads /proc where
// there is one (Linux) and asks ps otherwise.
func processTable() (procTable, error) {
	t := procTable{kids: map[int][]int{}, members: map[int][]int{}, live: map[int]bool{}}
	if all, err := procstat.All(); err == nil {
		for _, p := range all {
			t.kids[p.PPID] = append(t.kids[p.PPID], p.PID)
			t.members[p.Session] = append(t.members[p.Session], p.PID)
			t.live[p.PID] = p.Live()
		}
		return t, nil
	}
	out, err := exec.Command("ps", "-A", "-o", "pid=", "-o", "ppid=").Output()
	if err != nil {
		return t, errors.New("sshdtest: cannot list processes (no /proc, no ps)")
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		ppid, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil {
			t.kids[ppid] = append(t.kids[ppid], pid)
			t.live[pid] = true
		}
	}
	return t, nil
}

func children(pid int) ([]int, error) {
	t, err := processTable()
	if err != nil {
		return nil, err
	}
	return t.kids[pid], nil
}

// killTrees SIGKILLs every process below the roots, and the roots too when
// withRoots, until none is left. A process whose parent was killed before
// it was listed is reparented away from the tree; it is still found
// through its session (sshd gives every connection a session of its own),
// which outlives the session's leader.
func killTrees(roots []int, withRoots bool) error {
	found := map[int]bool{} // every process listed so far; their sessions are followed
	for range 20 {
		t, err := processTable()
		if err != nil {
			return err
		}
		var queue []int
		for _, r := range roots {
			if withRoots {
				queue = append(queue, r)
			} else {
				queue = append(queue, t.kids[r]...)
			}
		}
		for p := range found {
			queue = append(queue, t.members[p]...)
		}
		seen := map[int]bool{}
		var all []int
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if seen[p] {
				continue
			}
			seen[p] = true
			all = append(all, p)
			queue = append(queue, t.kids[p]...)
			queue = append(queue, t.members[p]...)
		}
		alive := 0
		for _, p := range all {
			found[p] = true
			if !t.live[p] {
				continue
			}
			if proc, err := os.FindProcess(p); err == nil && proc.Kill() == nil {
				alive++
			}
		}
		if alive == 0 {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// killMarked SIGKILLs every process whose environment holds the entry kv
// (Linux only: it reads /proc/PID/environ).
func killMarked(kv string) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, v := range strings.Split(string(b), "\x00") {
			if v == kv {
				if p, err := os.FindProcess(pid); err == nil {
					_ = p.Kill()
				}
				break
			}
		}
	}
}
