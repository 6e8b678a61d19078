package sshdtest

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// processTable maps each process to its children. It reads /proc where
// there is one (Linux) and asks ps otherwise.
func processTable() (map[int][]int, error) {
	kids := map[int][]int{}
	if ents, err := os.ReadDir("/proc"); err == nil {
		if _, err := os.Stat("/proc/self/stat"); err == nil {
			for _, e := range ents {
				pid, err := strconv.Atoi(e.Name())
				if err != nil {
					continue
				}
				b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
				if err != nil {
					continue // exited meanwhile
				}
				// pid (comm) state ppid ...; comm may hold spaces and parens.
				s := string(b)
				i := strings.LastIndexByte(s, ')')
				if i < 0 {
					continue
				}
				f := strings.Fields(s[i+1:])
				if len(f) < 2 {
					continue
				}
				ppid, err := strconv.Atoi(f[1])
				if err != nil {
					continue
				}
				kids[ppid] = append(kids[ppid], pid)
			}
			return kids, nil
		}
	}
	out, err := exec.Command("ps", "-A", "-o", "pid=", "-o", "ppid=").Output()
	if err != nil {
		return nil, errors.New("sshdtest: cannot list processes (no /proc, no ps)")
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		ppid, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil {
			kids[ppid] = append(kids[ppid], pid)
		}
	}
	return kids, nil
}

func children(pid int) ([]int, error) {
	t, err := processTable()
	if err != nil {
		return nil, err
	}
	return t[pid], nil
}

// killTrees SIGKILLs every process below the roots, and the roots too when
// withRoots. The whole tree is listed before anything is killed, so that no
// process is reparented away from it before it is found.
func killTrees(roots []int, withRoots bool) error {
	for range 3 {
		t, err := processTable()
		if err != nil {
			return err
		}
		var all, queue []int
		for _, r := range roots {
			if withRoots {
				queue = append(queue, r)
			} else {
				queue = append(queue, t[r]...)
			}
		}
		seen := map[int]bool{}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if seen[p] {
				continue
			}
			seen[p] = true
			all = append(all, p)
			queue = append(queue, t[p]...)
		}
		alive := 0
		for _, p := range all {
			if proc, err := os.FindProcess(p); err == nil && proc.Kill() == nil {
				alive++
			}
		}
		if alive == 0 {
			return nil
		}
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
