//go:build linux

package exedevtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moatdev/moat/internal/procstat"
)

// sandboxInfo says how VMs are isolated with bubblewrap.
//
// Each VM is one long-lived bwrap "machine": a mount namespace in which /
// is the host's root read-only, /home/exedev is the VM's home, /tmp the
// VM's own /tmp, with /dev and /proc, plus its own UTS (hostname = VM
// name), IPC and cgroup namespaces. The network and the PID namespace are
// the host's. Every session enters that machine with nsenter, which execs
// the shell in place: the shell is the emulator's direct child (its real
// wait status, signals included, is known), it leads its own session and
// process group, and all sessions of a VM share one filesystem view, so a
// kill in one session reaches processes started by another, as on one
// machine.
type sandboxInfo struct {
	bwrap, nsenter string
}

// machine is a VM's namespace holder: a `cat` inside bwrap that lives until
// its stdin (held by the emulator) closes.
type machine struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	pid     int      // the holder inside the namespaces
	nsFlags []string // nsenter flags that enter the machine
	mntNS   string   // readlink of /proc/<pid>/ns/mnt
	// nsRef holds the mount namespace open until release: a freed
	// namespace's identity (its inode) is reused by new ones, and a sweep
	// matching a reused one would kill another VM's processes.
	nsRef *os.File
	done  chan struct{}
}

// release lets the machine's mount namespace go; sweeps by it must be over.
func (m *machine) release() {
	if m.nsRef != nil {
		m.nsRef.Close()
	}
}

// probeSandbox checks once that bwrap and nsenter work here.
func probeSandbox(dir string, log *slog.Logger) *sandboxInfo {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		log.Info("exedevtest: bwrap not found", "err", err)
		return nil
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		log.Info("exedevtest: nsenter not found", "err", err)
		return nil
	}
	si := &sandboxInfo{bwrap: bwrap, nsenter: nsenter}
	root := filepath.Join(dir, "probe")
	home, tmp := filepath.Join(root, "home"), filepath.Join(root, "tmp")
	defer os.RemoveAll(root)
	if os.MkdirAll(home, 0o755) != nil || os.MkdirAll(tmp, 0o777) != nil {
		return nil
	}
	m, err := si.start("probe", home, tmp)
	if err != nil {
		log.Info("exedevtest: bwrap does not work here", "err", err)
		return nil
	}
	defer func() { m.stop(); m.release() }()
	cmd := exec.Command(nsenter, si.args(m, []string{"/bin/sh", "-c", `test "$PWD" = /home/exedev && test "$(hostname)" = probe && echo ok >/tmp/probe`})...)
	out, err := cmd.CombinedOutput()
	if b, _ := os.ReadFile(filepath.Join(tmp, "probe")); err != nil || string(b) != "ok\n" {
		log.Info("exedevtest: nsenter into bwrap does not work here", "err", err, "output", string(out))
		return nil
	}
	return si
}

// start starts a machine whose home and /tmp are the given host dirs. The
// holder prints its PID once it runs inside the finished sandbox (bwrap's
// --info-fd reports the child's PID before the child has built its mount
// namespace, too early to enter it).
func (si *sandboxInfo) start(hostname, home, tmp string) (*machine, error) {
	args := []string{
		"--ro-bind", "/", "/",
		"--dev", "/dev",
		"--proc", "/proc",
		"--tmpfs", "/home",
		"--bind", home, "/home/exedev",
		"--bind", tmp, "/tmp",
		"--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--hostname", hostname,
		"--die-with-parent",
		"--chdir", "/home/exedev",
		"--", "/bin/sh", "-c", "echo $$; exec cat",
	}
	cmd := exec.Command(si.bwrap, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &machine{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(m.done)
	}()
	var pidLine string
	select {
	case pidLine = <-line:
	case <-time.After(10 * time.Second):
		pidLine = "timed out"
	}
	m.pid, err = strconv.Atoi(strings.TrimSpace(pidLine))
	if err != nil || m.pid <= 0 {
		m.stop()
		return nil, fmt.Errorf("bwrap did not start: %q: %s", pidLine, strings.TrimSpace(stderr.String()))
	}
	if m.nsRef, err = os.Open(fmt.Sprintf("/proc/%d/ns/mnt", m.pid)); err != nil {
		m.stop()
		return nil, err
	}
	if m.mntNS, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", m.pid)); err != nil {
		m.stop()
		m.release()
		return nil, err
	}
	if self, _ := os.Readlink("/proc/self/ns/mnt"); self == m.mntNS {
		m.stop()
		m.release()
		return nil, errors.New("bwrap made no mount namespace")
	}
	m.nsFlags = []string{"-m", "-u", "-i"}
	differs := func(ns string) bool {
		a, _ := os.Readlink("/proc/self/ns/" + ns)
		b, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", m.pid, ns))
		return a != b && b != ""
	}
	if differs("cgroup") {
		m.nsFlags = append(m.nsFlags, "-C")
	}
	if differs("user") {
		m.nsFlags = append(m.nsFlags, "-U", "--preserve-credentials")
	}
	return m, nil
}

// stop ends the holder (its namespaces go when their last process is gone).
func (m *machine) stop() {
	m.stdin.Close()
	select {
	case <-m.done:
		return
	case <-time.After(time.Second):
	}
	syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.done
}

// args is the nsenter command line running argv inside machine m, in the
// holder's working directory (/home/exedev).
func (si *sandboxInfo) args(m *machine, argv []string) []string {
	a := append([]string{"-t", strconv.Itoa(m.pid)}, m.nsFlags...)
	a = append(a, "-w", "--")
	return append(a, argv...)
}

func (v *vm) command(argv, env []string) *exec.Cmd {
	v.mu.Lock()
	m := v.mach
	v.mu.Unlock()
	var cmd *exec.Cmd
	if si := v.s.sandbox; si != nil && m != nil {
		cmd = exec.Command(si.nsenter, si.args(m, argv)...)
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
		cmd.Dir = v.home
	}
	cmd.Env = env
	return cmd
}

// sweep kills every process still running in the VM: in sandbox mode those
// in its mount namespace, otherwise those carrying its marker variable.
func (v *vm) sweep() {
	v.mu.Lock()
	m := v.mach
	v.mu.Unlock()
	var match func(pid string) bool
	if m != nil {
		match = func(pid string) bool {
			ns, err := os.Readlink("/proc/" + pid + "/ns/mnt")
			return err == nil && ns == m.mntNS
		}
	} else {
		want := []byte("\x00" + markerVar + "=" + v.marker + "\x00")
		match = func(pid string) bool {
			b, err := os.ReadFile("/proc/" + pid + "/environ")
			return err == nil && bytes.Contains(append([]byte{0}, b...), want)
		}
	}
	self := strconv.Itoa(os.Getpid())
	for round := 0; round < 20; round++ {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return
		}
		found := 0
		for _, e := range ents {
			pid := e.Name()
			if pid[0] < '0' || pid[0] > '9' || pid == self {
				continue
			}
			if m != nil && pid == strconv.Itoa(m.pid) {
				continue // the holder goes with stop
			}
			if match(pid) {
				if n, err := strconv.Atoi(pid); err == nil && isLive(n) {
					syscall.Kill(n, syscall.SIGKILL)
					found++
				}
			}
		}
		if found == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isLive reports whether pid is a process that is not a zombie.
func isLive(pid int) bool {
	st, err := procstat.Read(pid)
	return err == nil && st.Live()
}
