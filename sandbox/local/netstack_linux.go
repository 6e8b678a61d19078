//go:build linux

package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moatdev/moat/internal/execout"
)

const (
	// netTimeout bounds how long a command waits for its network:
	// slirp4netns starting, attaching and configuring the interface.
	netTimeout = 20 * time.Second
	// slirpDNS is the address where slirp4netns answers DNS, forwarding to
	// the host's resolvers (loopback ones included).
	slirpDNS = "10.0.2.3"
	// maxResolvConf caps what is read of the host's resolv.conf.
	maxResolvConf = 16 << 10
)

// netPlan gives one bwrap command its network. For NetworkIsolated, bwrap
// itself starts in a new user and network namespace of its own (made by
// the kernel as it forks bwrap), keeps that network namespace for the
// command (--share-net), and holds the command back (--block-fd) until
// slirp4netns has attached to the namespace and configured its interface.
// bwrap's own setup never touches that namespace, so nothing races with
// slirp4netns, and the namespace is bwrap's, a child moat has not reaped:
// slirp4netns cannot be pointed at another process's namespace.
//
// Use it as: newNetPlan; cmd.ExtraFiles = files; setAttr(cmd.SysProcAttr);
// Start; started; attach; and, once bwrap has ended, stop.
type netPlan struct {
	args  []string   // bwrap options, naming fds 3 and up
	files []*os.File // the command's ends, as ExtraFiles
	mine  []*os.File // our ends, closed by stop

	stack string   // slirp4netns binary; "" when nothing is to be attached
	block *os.File // write end of --block-fd

	slirp  *exec.Cmd
	exitW  *os.File // slirp4netns --exit-fd: it ends when this is closed
	stderr *execout.Capped
}

// newNetPlan prepares the network of a command under bwrap: network is the
// Network in effect (never ""), stack the slirp4netns binary for
// NetworkIsolated.
func newNetPlan(network Network, stack string) (*netPlan, error) {
	n := &netPlan{}
	switch network {
	case NetworkHost:
		n.args = []string{"--share-net"}
		// /etc/resolv.conf may lead into /run, which is hidden: give the
		// sandbox the host's resolver list where the link leads.
		if dst := resolvConfTarget("/etc/resolv.conf"); dst != "/etc/resolv.conf" {
			data, err := readResolvConf(dst)
			if err == nil {
				if err := n.data(dst, data); err != nil {
					n.stop()
					return nil, err
				}
			}
		}
		return n, nil
	case NetworkNone:
		return n, nil
	}
	n.stack = stack
	n.args = []string{"--share-net"} // the namespace made for bwrap
	blockR, blockW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	n.block = blockW
	n.mine = append(n.mine, blockW)
	n.pass(blockR, "--block-fd")
	// Names resolve through slirp4netns, which forwards to the host's
	// resolvers: a loopback resolver (systemd-resolved's 127.0.0.53) is
	// not reachable from the sandbox's own loopback.
	host, _ := readResolvConf("/etc/resolv.conf")
	if err := n.data(resolvConfTarget("/etc/resolv.conf"), isolatedResolvConf(host)); err != nil {
		n.stop()
		return nil, err
	}
	return n, nil
}

// setAttr makes bwrap start in its own user and network namespaces when
// the plan attaches a stack. The user namespace maps only the user running
// moat, to itself; bwrap makes the command's own namespaces inside it.
func (n *netPlan) setAttr(a *syscall.SysProcAttr) {
	if n.stack == "" {
		return
	}
	a.Cloneflags |= syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET
	a.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}}
	a.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}}
	a.GidMappingsEnableSetgroups = false
}

// pass hands f to bwrap as the next fd, named after option.
func (n *netPlan) pass(f *os.File, option string) {
	n.files = append(n.files, f)
	n.args = append(n.args, option, strconv.Itoa(2+len(n.files)))
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

// started closes the command's ends once it has them (or failed to start).
func (n *netPlan) started() {
	for _, f := range n.files {
		f.Close()
	}
	n.files = nil
}

// attach starts the stack on the namespaces of bwrap, pid, which must not
// have been reaped, and then lets bwrap run the command. On error the
// command has not run: the caller must kill bwrap before stop.
func (n *netPlan) attach(ctx context.Context, pid int) error {
	if n.stack == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, netTimeout)
	defer cancel()
	dir := "/proc/" + strconv.Itoa(pid) + "/ns/"
	netns, err := os.Open(dir + "net")
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	defer netns.Close()
	userns, err := os.Open(dir + "user")
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	defer userns.Close()
	if err := n.startStack(ctx, netns, userns); err != nil {
		return fmt.Errorf("network: %s: %w", filepath.Base(n.stack), err)
	}
	if _, err := n.block.Write([]byte{1}); err != nil {
		return fmt.Errorf("network: releasing bwrap: %w", err)
	}
	return nil
}

// startStack starts slirp4netns on the namespaces and waits until it has
// configured the interface.
func (n *netPlan) startStack(ctx context.Context, netns, userns *os.File) error {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return err
	}
	n.exitW = exitW
	n.mine = append(n.mine, exitW)
	n.stderr = &execout.Capped{N: 4 << 10}
	c := exec.Command(n.stack, slirpArgs()...)
	// fd 3: ready, 4: exit, 5: net namespace, 6: user namespace.
	c.ExtraFiles = []*os.File{readyW, exitR, netns, userns}
	c.Stderr = n.stderr
	c.Env = []string{"PATH=" + hostPath()}
	// Its own process group, apart from the command's, which run kills
	// as a whole. It ends when exitW closes: in stop, or when moat ends,
	// however it ends (and, as a second line, with Pdeathsig).
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = c.Start()
	readyW.Close()
	exitR.Close()
	if err != nil {
		return err
	}
	n.slirp = c
	if dl, ok := ctx.Deadline(); ok {
		_ = readyR.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = readyR.SetReadDeadline(time.Now()) })
	defer stop()
	var b [1]byte
	if _, err := io.ReadFull(readyR, b[:]); err != nil {
		n.stopStack()
		if msg := strings.TrimSpace(n.stderr.String()); msg != "" {
			return fmt.Errorf("not ready (%v): %s", n.slirp.ProcessState, lastLines(msg, 3))
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ctx.Err()
			}
			return fmt.Errorf("not ready after %s", netTimeout)
		}
		return fmt.Errorf("not ready (%v)", n.slirp.ProcessState)
	}
	return nil
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

// stopStack ends slirp4netns and reaps it.
func (n *netPlan) stopStack() {
	if n.slirp == nil || n.slirp.ProcessState != nil {
		return
	}
	if n.exitW != nil {
		n.exitW.Close()
	}
	_ = n.slirp.Process.Kill()
	_ = n.slirp.Wait()
}

// stop ends the stack and closes every file of the plan. Call it once
// bwrap has ended.
func (n *netPlan) stop() {
	n.stopStack()
	n.started()
	for _, f := range n.mine {
		f.Close()
	}
	n.mine = nil
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

// probeStack runs "exit 0" under bwrap with an isolated network through
// stack, as a command would.
func probeStack(ctx context.Context, bwrap, stack string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	nw, err := newNetPlan(NetworkIsolated, stack)
	if err != nil {
		return err
	}
	defer nw.stop()
	args := append(bwrapArgs(false), "--ro-bind", "/", "/")
	args = append(args, nw.args...)
	args = append(args, "--dev", "/dev", "--proc", "/proc", "--", "/bin/sh", "-c", "exit 0")
	c := exec.Command(bwrap, args...)
	c.Env = []string{"PATH=" + hostPath()}
	c.ExtraFiles = nw.files
	out := &execout.Capped{N: 4 << 10}
	c.Stdout, c.Stderr = out, out
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	nw.setAttr(c.SysProcAttr)
	err = c.Start()
	nw.started()
	if err != nil {
		return err
	}
	if err := nw.attach(ctx, c.Process.Pid); err != nil {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		_ = c.Wait()
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL) })
	defer stop()
	if err := c.Wait(); err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("%w: %s", err, lastLines(msg, 3))
		}
		return err
	}
	return nil
}
