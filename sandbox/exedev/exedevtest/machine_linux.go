//go:build linux

package exedevtest

import (
	"bufio"
	"bytes"
	"encoding/json"
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

	"golang.org/x/sys/unix"

	"github.com/moatdev/moat/internal/hostview"
	"github.com/moatdev/moat/internal/procstat"
)

// sandboxInfo says how VMs are contained with bubblewrap.
//
// Each VM is one long-lived bwrap "machine": its own PID, mount, UTS
// (hostname = VM name), IPC and cgroup namespaces. Its filesystem holds
// only the host's system directories and the toolchains on PATH, read-only
// and without the files that hold the host's secrets (internal/hostview),
// /home/exedev (the VM's home), the VM's own /tmp, /dev, and a /proc of
// its own PID namespace: no host home, no /root, /run or /var, and no host
// process to see, signal or read the environment of. The network is the
// host's.
//
// Every session enters the machine with nsenter, which forks to join the
// PID namespace (a process enters one only as a child); its child runs
// setsid (after, unprivileged, a second nsenter into the holder's user
// namespace, or, as root, setpriv shedding every capability: see
// userNamespaces), which execs the shell, so the shell leads its own
// session and process group inside the VM, and all sessions of a VM share
// one filesystem and one PID namespace: a kill in one session reaches
// processes started by another, as on one machine. nsenter waits for the
// shell and ends as it did (with its exit status, or killed by the same
// signal), so the emulator learns the shell's status from its own child.
// Signals for the session go to the shell's process group, found as
// nsenter's child (signalTarget). The machine's init is bwrap's PID 1:
// when the holder under it ends, the kernel kills every process of the VM.
type sandboxInfo struct {
	bwrap, nsenter, setsid string
	setpriv                string // drops root's capabilities; "" when not root
	path                   string // the PATH whose toolchains VMs see
}

// machine is a VM's namespace holder: a `cat` inside bwrap that lives until
// its stdin (held by the emulator) closes.
type machine struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	pid     int      // host PID of the VM's init (PID 1 inside)
	nsFlags []string // nsenter flags that enter the machine
	mntNS   string   // readlink of /proc/<pid>/ns/mnt
	// nsRef holds the mount namespace open until release: a freed
	// namespace's identity (its inode) is reused by new ones, and a sweep
	// matching a reused one would kill another VM's processes.
	nsRef *os.File
	// ownerNS is the user namespace that owns the machine's namespaces,
	// held open while nsenter enters it by a path to this process's fd;
	// nil when it is the emulator's own.
	ownerNS *os.File
	// inner: the holder runs in a user namespace nested in ownerNS, which
	// sessions enter last (see userNamespaces).
	inner bool
	// dropCaps: the machine is in the emulator's user namespace, and the
	// emulator is root there: sessions shed every capability (as bwrap
	// does for the holder), or they could remount the read-only binds
	// writable and write to the host's /usr and /etc.
	dropCaps bool
	done     chan struct{}
}

// release lets the machine's mount namespace go; sweeps by it must be over.
func (m *machine) release() {
	if m.nsRef != nil {
		m.nsRef.Close()
	}
	if m.ownerNS != nil {
		m.ownerNS.Close()
	}
}

// probeSandbox checks once that bwrap and nsenter work here: a probe VM
// is made and entered as every VM is.
func probeSandbox(dir string, log *slog.Logger) (*sandboxInfo, error) {
	si := &sandboxInfo{path: vmPath()}
	for _, tool := range []struct {
		name string
		dst  *string
		fix  string
	}{
		{"bwrap", &si.bwrap, "install bubblewrap (apt-get install bubblewrap)"},
		{"nsenter", &si.nsenter, "install util-linux (apt-get install util-linux)"},
		{"setsid", &si.setsid, "install util-linux (apt-get install util-linux)"},
	} {
		p, err := exec.LookPath(tool.name)
		if err != nil {
			return nil, &NoContainmentError{Reason: tool.name + " not found on PATH", Fix: tool.fix}
		}
		*tool.dst = p
	}
	tools := []string{si.setsid, si.nsenter} // run inside VMs too
	if os.Geteuid() == 0 {
		p, err := exec.LookPath("setpriv")
		if err != nil {
			return nil, &NoContainmentError{Reason: "setpriv not found on PATH (run as root, VM commands must shed their capabilities)", Fix: "install util-linux (apt-get install util-linux)"}
		}
		si.setpriv = p
		tools = append(tools, p)
	}
	for _, tool := range tools {
		if !hostview.Visible(filepath.Clean(tool), si.path) {
			return nil, &NoContainmentError{Reason: tool + " is outside the directories VMs see", Fix: "install util-linux (apt-get install util-linux)"}
		}
	}
	root := filepath.Join(dir, "probe")
	home, tmp := filepath.Join(root, "home"), filepath.Join(root, "tmp")
	defer os.RemoveAll(root)
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(tmp, 0o777); err != nil {
		return nil, err
	}
	m, err := si.start("probe", home, tmp)
	if err != nil {
		log.Info("exedevtest: bwrap does not work here", "err", err)
		return nil, &NoContainmentError{Reason: "bubblewrap does not work here: " + err.Error(),
			Fix: "bwrap needs unprivileged user namespaces (or root); check that `bwrap --unshare-pid --dev-bind / / true` works"}
	}
	defer func() { m.stop(); m.release() }()
	// Inside: the VM's home, hostname and /tmp, PID 1 is the machine's
	// init, the shell leads its own process group and has no
	// capabilities.
	script := `test "$PWD" = /home/exedev && test "$(hostname)" = probe && test -d /proc/1 && test "$(ps -o pgid= -p $$)" -eq $$ && grep -q '^CapEff:[[:space:]]*0*$' /proc/self/status && echo ok >/tmp/probe`
	cmd := exec.Command(si.nsenter, si.args(m, []string{"/bin/sh", "-c", script})...)
	out, err := cmd.CombinedOutput()
	if b, _ := os.ReadFile(filepath.Join(tmp, "probe")); err != nil || string(b) != "ok\n" {
		log.Info("exedevtest: nsenter into bwrap does not work here", "err", err, "output", string(out))
		return nil, &NoContainmentError{Reason: fmt.Sprintf("cannot enter a bubblewrap VM with nsenter: %v: %s", err, strings.TrimSpace(string(out)))}
	}
	return si, nil
}

// start starts a machine whose home and /tmp are the given host dirs. The
// holder prints a line once it runs inside the finished sandbox; bwrap's
// --info-fd then gives the host PID of the machine's init (it reports it
// before the init has built the mount namespace, too early to enter it).
func (si *sandboxInfo) start(hostname, home, tmp string) (*machine, error) {
	args := []string{
		"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--hostname", hostname,
		"--die-with-parent",
		"--info-fd", "3",
		"--dev", "/dev",
		"--proc", "/proc",
		"--tmpfs", "/home",
		"--bind", home, "/home/exedev",
		"--bind", tmp, "/tmp",
	}
	args = append(args, hostview.BwrapArgs(si.path)...)
	args = append(args, resolvConf()...)
	args = append(args, "--chdir", "/home/exedev", "--", "/bin/sh", "-c", "echo ready; exec cat")
	cmd := exec.Command(si.bwrap, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	infoR, infoW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer infoR.Close()
	cmd.ExtraFiles = []*os.File{infoW}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		infoW.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		infoW.Close()
		return nil, err
	}
	err = cmd.Start()
	infoW.Close()
	if err != nil {
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
	var ready string
	select {
	case ready = <-line:
	case <-time.After(10 * time.Second):
		ready = "timed out"
	}
	if ready != "ready\n" {
		m.stop()
		return nil, fmt.Errorf("bwrap did not start: %q: %s", ready, strings.TrimSpace(stderr.String()))
	}
	var info struct {
		ChildPID int `json:"child-pid"`
	}
	infoR.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := json.NewDecoder(infoR).Decode(&info); err != nil || info.ChildPID <= 0 {
		m.stop()
		return nil, fmt.Errorf("bwrap gave no child PID: %v", err)
	}
	m.pid = info.ChildPID
	if m.nsRef, err = os.Open(fmt.Sprintf("/proc/%d/ns/mnt", m.pid)); err != nil {
		m.stop()
		return nil, err
	}
	if m.mntNS, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", m.pid)); err != nil {
		m.stop()
		m.release()
		return nil, err
	}
	differs := func(ns string) bool {
		a, _ := os.Readlink("/proc/self/ns/" + ns)
		b, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", m.pid, ns))
		return a != b && b != ""
	}
	for _, ns := range []string{"mnt", "pid", "uts", "ipc"} {
		if !differs(ns) {
			m.stop()
			m.release()
			return nil, fmt.Errorf("bwrap made no %s namespace", ns)
		}
	}
	m.nsFlags = []string{"-m", "-u", "-i", "-p"}
	if differs("cgroup") {
		m.nsFlags = append(m.nsFlags, "-C")
	}
	if err := m.userNamespaces(); err != nil {
		m.stop()
		m.release()
		return nil, err
	}
	return m, nil
}

// userNamespaces sets how sessions enter the machine's user namespaces.
// Run by root, bwrap makes none. Unprivileged, it makes two: the
// machine's namespaces belong to an outer one, in which the user is root
// (bwrap needs that to mount /dev/pts), and the holder runs in an inner
// one, as the user, with no capabilities. A session enters the outer one
// first (only there may it join the machine's namespaces), then, with
// another nsenter inside, the inner one, so that it ends as the holder
// is: the user, without capabilities (in the outer one it could remount
// the read-only binds writable).
func (m *machine) userNamespaces() error {
	// (Run by root, sessions shed their capabilities instead: dropCaps.)
	fd, err := unix.IoctlRetInt(int(m.nsRef.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		return fmt.Errorf("the owner of the VM's mount namespace: %w", err)
	}
	owner := os.NewFile(uintptr(fd), "userns")
	ownerID, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	selfID, _ := os.Readlink("/proc/self/ns/user")
	holderID, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", m.pid))
	if ownerID == "" || holderID == "" {
		owner.Close()
		return errors.New("cannot read the VM's user namespaces")
	}
	if ownerID == selfID {
		owner.Close()
		m.dropCaps = os.Geteuid() == 0
	} else {
		m.ownerNS = owner
		m.nsFlags = append(m.nsFlags, fmt.Sprintf("--user=/proc/%d/fd/%d", os.Getpid(), fd), "--preserve-credentials")
	}
	m.inner = holderID != ownerID
	return nil
}

// resolvConf makes /etc/resolv.conf work inside a VM (which shares the
// host's network) when it is a symbolic link into a directory VMs do not
// see, such as systemd-resolved's /run/systemd/resolve/stub-resolv.conf:
// that one file is bound read-only at the link's target.
func resolvConf() []string {
	const f = "/etc/resolv.conf"
	fi, err := os.Lstat(f)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return nil
	}
	target, err := filepath.EvalSymlinks(f)
	if err != nil || hostview.Visible(target, "") {
		return nil
	}
	return []string{"--ro-bind", target, target}
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
// init's working directory (/home/exedev), as the leader of a new session.
func (si *sandboxInfo) args(m *machine, argv []string) []string {
	a := append([]string{"-t", strconv.Itoa(m.pid)}, m.nsFlags...)
	a = append(a, "-w", "--")
	if m.inner {
		a = append(a, si.nsenter, "-t", "1", "-U", "--preserve-credentials", "--")
	}
	if m.dropCaps {
		a = append(a, si.setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--")
	}
	a = append(a, si.setsid)
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

// signalTarget returns a func giving the process group that signals for
// the session that cmd (started) runs go to, or 0 when there is none any
// more. Plain, that is cmd's own group: cmd is the shell. Contained, cmd
// is nsenter and the shell is its child, leading a group of its own once
// setsid has run; it is looked for on first use, and given only while
// nsenter runs (until then the shell's PID is not free for reuse). The
// func is for one goroutine.
func (v *vm) signalTarget(cmd *exec.Cmd) func() int {
	pid := cmd.Process.Pid
	if v.s.sandbox == nil {
		return func() int { return pid }
	}
	leader := 0
	return func() int {
		if !isLive(pid) {
			// nsenter has ended (the emulator holds it as a zombie), so
			// it has reaped the shell, whose PID may be another's now.
			return 0
		}
		for deadline := time.Now().Add(5 * time.Second); leader == 0 && time.Now().Before(deadline); {
			all, _ := procstat.All()
			for _, st := range all {
				if st.PPID == pid && st.PGRP == st.PID {
					leader = st.PID
				}
			}
			if leader == 0 {
				if !isLive(pid) {
					break // nsenter is done: so is its child
				}
				time.Sleep(time.Millisecond)
			}
		}
		return leader
	}
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

// visible reports whether the clean absolute path p, outside the VM's
// home and /tmp, is one a contained VM sees (the host's, read-only).
func (v *vm) visible(p string) bool {
	if v.s.sandbox == nil {
		return true
	}
	if target, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil && p == target {
		return true
	}
	return hostview.Visible(p, v.s.sandbox.path)
}
