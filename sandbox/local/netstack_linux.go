//go:build linux

package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moatdev/moat/internal/execout"
	"github.com/moatdev/moat/internal/procgroup"
	"golang.org/x/sys/unix"
)

const (
	// netTimeout bounds how long making a sandbox's network may take:
	// its namespaces, and slirp4netns starting, attaching and configuring
	// the interface.
	netTimeout = 20 * time.Second
	// slirpDNS is the address where slirp4netns answers DNS, forwarding to
	// the host's resolvers (loopback ones included).
	slirpDNS = "10.0.2.3"
	// maxResolvConf caps what is read of the host's resolv.conf.
	maxResolvConf = 16 << 10
	// helperWaitDelay bounds the wait for a helper's stderr to end after
	// the helper has: a process it left behind may hold the pipe.
	helperWaitDelay = time.Second
)

// netns is the network of one sandbox under bwrap with NetworkIsolated or
// NetworkNone: a user namespace and a network namespace owned by it, with
// loopback up, made once at Create and held open by moat's descriptors
// alone, so that no process has to stay in them. Every command of the
// sandbox joins them before bwrap starts it: the commands of one
// sandbox share loopback and interfaces as the processes of one machine
// do, while other sandboxes and the host are out of reach. For
// NetworkIsolated one slirp4netns, attached at Create, is the way out.
//
// Nothing of it outlives moat, however moat ends: the namespaces end with
// moat's descriptors and the sandbox's processes (which die with moat,
// --die-with-parent), and slirp4netns ends when its exit pipe, held by
// moat, closes (and, as a second line, by Pdeathsig).
type netns struct {
	user, net *os.File // the namespaces; the last reference but the commands'
	// enter runs the rest of argv in the namespaces (nsenter); nil when
	// moat may enter the network namespace itself (see startIn).
	enter  []string
	resolv []byte // NetworkIsolated: the resolv.conf commands see
	stack  *stack // NetworkIsolated: slirp4netns; nil otherwise
}

// newNetns makes the network of a sandbox: network is NetworkIsolated (with
// stack, the slirp4netns binary) or NetworkNone. Commands join it through
// nsenter, or, when nsenter is "", from a thread of moat (startIn).
func newNetns(parent context.Context, bwrap, nsenter string, network Network, stack string) (*netns, error) {
	ctx, cancel := context.WithTimeout(parent, netTimeout)
	defer cancel()
	user, net, err := makeNamespaces(ctx, bwrap)
	if err != nil {
		if perr := parent.Err(); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("making its namespaces: %w", err)
	}
	n := &netns{user: user, net: net}
	if nsenter != "" {
		// nsenter opens the namespaces through moat's descriptors, which
		// it may read as a process of the same user: no descriptor of them
		// is passed down to the commands, and no pid can be reused under
		// it.
		fd := "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/"
		n.enter = []string{nsenter, "--preserve-credentials",
			"--user=" + fd + strconv.Itoa(int(user.Fd())),
			"--net=" + fd + strconv.Itoa(int(net.Fd())),
			"--"}
	}
	if network != NetworkIsolated {
		return n, nil
	}
	if n.stack, err = startStack(ctx, stack, net, user); err != nil {
		n.close()
		if perr := parent.Err(); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("%s: %w", filepath.Base(stack), err)
	}
	// Names resolve through slirp4netns, which forwards to the host's
	// resolvers: a loopback resolver (systemd-resolved's 127.0.0.53) is
	// not reachable from the sandbox's own loopback.
	host, _ := readResolvConf("/etc/resolv.conf")
	n.resolv = isolatedResolvConf(host)
	return n, nil
}

// makeNamespaces returns a new user namespace, which maps only the user
// running moat, to itself, and a network namespace it owns, with loopback
// up. bwrap makes them (it brings loopback up in the network namespaces it
// makes) and stops before running anything in them (--block-fd) until
// they are open here; then it exits.
func makeNamespaces(ctx context.Context, bwrap string) (user, net *os.File, err error) {
	infoR, infoW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer infoR.Close()
	blockR, blockW, err := os.Pipe()
	if err != nil {
		infoW.Close()
		return nil, nil, err
	}
	stderr := &execout.Capped{N: 4 << 10}
	c := exec.Command(bwrap,
		"--unshare-user", "--unshare-net", "--die-with-parent",
		"--ro-bind", "/", "/",
		"--info-fd", "3", "--block-fd", "4",
		"--", "/bin/sh", "-c", "exit 0")
	c.ExtraFiles = []*os.File{infoW, blockR}
	c.Env = []string{"PATH=" + hostPath()}
	c.Stderr = stderr
	c.WaitDelay = helperWaitDelay
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = c.Start()
	infoW.Close()
	blockR.Close()
	if err != nil {
		blockW.Close()
		return nil, nil, err
	}
	defer func() {
		blockW.Close() // lets bwrap's command run, and end
		if err != nil {
			killGroup(c)
		}
		werr := waitCtx(ctx, c)
		if err == nil && werr != nil {
			err = errors.Join(werr, stderrErr(stderr))
		}
		if err != nil {
			user.Close()
			net.Close()
			user, net = nil, nil
		}
	}()

	if dl, ok := ctx.Deadline(); ok {
		_ = infoR.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = infoR.SetReadDeadline(time.Now()) })
	defer stop()
	var info struct {
		ChildPid int `json:"child-pid"`
	}
	if err := json.NewDecoder(infoR).Decode(&info); err != nil || info.ChildPid <= 0 {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, errors.Join(fmt.Errorf("bwrap gave no child pid (%v)", err), stderrErr(stderr))
	}
	// The child waits on --block-fd: its pid cannot have been reused.
	dir := "/proc/" + strconv.Itoa(info.ChildPid) + "/ns/"
	if user, err = os.Open(dir + "user"); err != nil {
		return nil, nil, err
	}
	if net, err = os.Open(dir + "net"); err != nil {
		return user, nil, err
	}
	return user, net, nil
}

// killGroup kills c's process group, which c (started with Setsid) leads:
// bwrap and, also before it is set to die with bwrap, its child.
func killGroup(c *exec.Cmd) {
	_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
}

// waitCtx waits for c, started with Setsid, killing its process group when
// ctx ends first (never after c is reaped, when its pid may be reused).
func waitCtx(ctx context.Context, c *exec.Cmd) error {
	var mu sync.Mutex
	exited := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !exited {
			killGroup(c)
		}
	})
	reap := procgroup.WaitExited(c)
	mu.Lock()
	exited = true
	mu.Unlock()
	stop()
	err := reap()
	if ctx.Err() != nil && err != nil {
		return ctx.Err()
	}
	return err
}

// stderrErr is what a helper said on stderr, as an error, or nil.
func stderrErr(c *execout.Capped) error {
	if msg := strings.TrimSpace(c.String()); msg != "" {
		return errors.New(lastLines(msg, 3))
	}
	return nil
}

// close ends slirp4netns and lets go of the namespaces. Call it once the
// sandbox's commands have ended (their namespaces end with them).
func (n *netns) close() {
	if n == nil {
		return
	}
	n.stopStack()
	if n.user != nil {
		n.user.Close()
	}
	if n.net != nil {
		n.net.Close()
	}
}

// stopStack ends slirp4netns, if any.
func (n *netns) stopStack() {
	if n != nil && n.stack != nil {
		n.stack.stop()
	}
}

// stack is one running slirp4netns.
type stack struct {
	cmd    *exec.Cmd
	exitW  *os.File // --exit-fd: slirp4netns ends when this is closed
	stderr *execout.Capped
	done   chan struct{} // closed once it has ended and been reaped
}

// startStack starts slirp4netns on the namespaces and waits until it has
// configured the interface.
func startStack(ctx context.Context, bin string, net, user *os.File) (*stack, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return nil, err
	}
	s := &stack{exitW: exitW, stderr: &execout.Capped{N: 4 << 10}, done: make(chan struct{})}
	c := exec.Command(bin, slirpArgs()...)
	// fd 3: ready, 4: exit, 5: net namespace, 6: user namespace.
	c.ExtraFiles = []*os.File{readyW, exitR, net, user}
	c.Stderr = s.stderr
	c.WaitDelay = helperWaitDelay
	c.Env = []string{"PATH=" + hostPath()}
	// Its own process group, apart from the commands', which Exec kills
	// as a whole. It ends when exitW closes: in stop, or when moat ends,
	// however it ends (and, as a second line, with Pdeathsig).
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = c.Start()
	readyW.Close()
	exitR.Close()
	if err != nil {
		exitW.Close()
		return nil, err
	}
	s.cmd = c
	go func() {
		_ = c.Wait()
		close(s.done)
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = readyR.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = readyR.SetReadDeadline(time.Now()) })
	defer stop()
	var b [1]byte
	if _, err := io.ReadFull(readyR, b[:]); err != nil {
		s.stop()
		if msg := strings.TrimSpace(s.stderr.String()); msg != "" {
			return nil, fmt.Errorf("not ready (%v): %s", c.ProcessState, lastLines(msg, 3))
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("not ready after %s", netTimeout)
		}
		return nil, fmt.Errorf("not ready (%v)", c.ProcessState)
	}
	return s, nil
}

// slirpArgs are slirp4netns's options: the host's loopback is out of
// reach, and slirp4netns (which parses the sandbox's packets) runs under a
// seccomp filter; as root, also in a mount namespace of its own and with
// its capabilities dropped (which needs privileges a user lacks).
func slirpArgs() []string {
	a := []string{
		"--configure",
		"--mtu=65520",
		"--disable-host-loopback",
		"--enable-seccomp",
	}
	if os.Geteuid() == 0 {
		a = append(a, "--enable-sandbox")
	}
	return append(a,
		"--ready-fd=3",
		"--exit-fd=4",
		"--netns-type=path",
		"--userns-path=/proc/self/fd/6",
		"/proc/self/fd/5",
		"tap0",
	)
}

// stop ends slirp4netns and waits until it is reaped.
func (s *stack) stop() {
	s.exitW.Close()
	_ = s.cmd.Process.Kill()
	<-s.done
}

// ended returns an error when slirp4netns is no longer running.
func (s *stack) ended() error {
	select {
	case <-s.done:
	default:
		return nil
	}
	if msg := strings.TrimSpace(s.stderr.String()); msg != "" {
		return fmt.Errorf("%s ended (%v): %s", filepath.Base(s.cmd.Path), s.cmd.ProcessState, lastLines(msg, 3))
	}
	return fmt.Errorf("%s ended (%v)", filepath.Base(s.cmd.Path), s.cmd.ProcessState)
}

// netPlan gives one bwrap command its network: the sandbox's namespaces
// (netns) or the host's. Start the command with start.
type netPlan struct {
	prefix []string   // runs bwrap: argv before the bwrap binary
	args   []string   // bwrap options, naming fds 3 and up
	files  []*os.File // the command's ends, as ExtraFiles; close after Start
	in     *os.File   // the network namespace start forks bwrap in, or nil
}

// start starts c, bwrap or the prefix that runs it.
func (n *netPlan) start(c *exec.Cmd) error {
	if n.in == nil {
		return c.Start()
	}
	return startIn(n.in, c)
}

// joinFromThread reports whether this process may enter a network
// namespace of its own user's from one of its threads (setns needs
// CAP_SYS_ADMIN where it runs: it does as root, not as another user), so
// that commands need no nsenter.
func joinFromThread() bool {
	if os.Geteuid() != 0 {
		return false
	}
	here, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return false
	}
	defer here.Close()
	// Entering the namespace it is in tries the permission and changes
	// nothing.
	return startIn(here, nil) == nil
}

// startIn starts c (nil: none) from an OS thread moved into the network
// namespace ns: a process forks in the network namespace of the thread
// that forks it. The thread returns to its own namespace before it runs
// anything else. If it cannot, it is kept out of use for good: ending it
// would kill bwrap (--die-with-parent follows the thread that forked it).
func startIn(ns *os.File, c *exec.Cmd) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		here, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer here.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("entering the sandbox's network namespace: %w", err)
			return
		}
		if c != nil {
			err = c.Start()
		}
		if rerr := unix.Setns(int(here.Fd()), unix.CLONE_NEWNET); rerr != nil {
			done <- err
			select {} // keep the thread locked, and alive
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// newNetPlan prepares the network of a command under bwrap: network is
// the Network in effect (never ""), ns the sandbox's namespaces for
// NetworkIsolated and NetworkNone.
func newNetPlan(network Network, ns *netns) (*netPlan, error) {
	n := &netPlan{args: []string{"--share-net"}}
	if network == NetworkHost {
		// /etc/resolv.conf may lead into /run, which is hidden: give the
		// sandbox the host's resolver list where the link leads.
		if dst := resolvConfTarget("/etc/resolv.conf"); dst != "/etc/resolv.conf" {
			if data, err := readResolvConf(dst); err == nil {
				if err := n.data(dst, data); err != nil {
					return nil, err
				}
			}
		}
		return n, nil
	}
	if ns == nil {
		return nil, fmt.Errorf("network %s: the sandbox has no namespaces", network)
	}
	if ns.stack != nil {
		if err := ns.stack.ended(); err != nil {
			return nil, err
		}
	}
	if ns.enter != nil {
		n.prefix = slices.Clone(ns.enter)
	} else {
		n.in = ns.net
	}
	if ns.resolv != nil {
		if err := n.data(resolvConfTarget("/etc/resolv.conf"), ns.resolv); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// data makes bwrap show content, read-only, at path.
func (n *netPlan) data(path string, content []byte) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	// Small (capped): fits the pipe's buffer, so the write cannot block.
	_, err = w.Write(content)
	w.Close()
	if err != nil {
		r.Close()
		return err
	}
	n.files = append(n.files, r)
	n.args = append(n.args, "--ro-bind-data", strconv.Itoa(2+len(n.files)), path)
	return nil
}

// close closes the command's ends: call it once the command has started
// (or failed to).
func (n *netPlan) close() {
	for _, f := range n.files {
		f.Close()
	}
	n.files = nil
}

func lastLines(s string, k int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > k {
		lines = lines[len(lines)-k:]
	}
	return strings.Join(lines, "; ")
}

// resolvConfTarget returns where path (/etc/resolv.conf) leads inside the
// sandbox, where /etc is the host's and /run is not: path itself, or, when
// it is a symbolic link out of /etc (to /run/systemd/resolve, say), the
// path it points to. Links within /etc are followed.
func resolvConfTarget(path string) string {
	for range 8 {
		t, err := os.Readlink(path)
		if err != nil {
			return path
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(path), t)
		}
		path = filepath.Clean(t)
		if !strings.HasPrefix(path, "/etc/") {
			return path
		}
	}
	return path
}

func readResolvConf(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxResolvConf))
}

// isolatedResolvConf is the resolv.conf of an isolated sandbox: slirp4netns
// as the only nameserver, with the host's search domains and options.
func isolatedResolvConf(host []byte) []byte {
	var b bytes.Buffer
	b.WriteString("# moat: names resolve through slirp4netns, which asks this computer's resolvers\n")
	b.WriteString("nameserver " + slirpDNS + "\n")
	for _, line := range strings.Split(string(host), "\n") {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "search" || f[0] == "domain" || f[0] == "options") {
			b.WriteString(strings.Join(f, " ") + "\n")
		}
	}
	return b.Bytes()
}

// probeNet makes the network of a sandbox, network isolated (through
// stack) or none, and runs "exit 0" under bwrap in it, as a command would.
func probeNet(ctx context.Context, bwrap, nsenter string, network Network, stack string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	ns, err := newNetns(ctx, bwrap, nsenter, network, stack)
	if err != nil {
		return err
	}
	defer ns.close()
	nw, err := newNetPlan(network, ns)
	if err != nil {
		return err
	}
	defer nw.close()
	argv := append(nw.prefix, bwrap)
	argv = append(argv, bwrapArgs(false)...)
	argv = append(argv, "--ro-bind", "/", "/")
	argv = append(argv, nw.args...)
	argv = append(argv, "--dev", "/dev", "--proc", "/proc", "--", "/bin/sh", "-c", "exit 0")
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = []string{"PATH=" + hostPath()}
	c.ExtraFiles = nw.files
	out := &execout.Capped{N: 4 << 10}
	c.Stdout, c.Stderr = out, out
	c.WaitDelay = helperWaitDelay
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = nw.start(c)
	nw.close()
	if err != nil {
		return err
	}
	if err := waitCtx(ctx, c); err != nil {
		return errors.Join(err, stderrErr(out))
	}
	return nil
}
