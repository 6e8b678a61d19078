//go:build linux

package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/testenv"
	"github.com/moatdev/moat/sandbox"
)

// The escapes of issue 13, tried for real: a canary on the host (a file,
// a process, a socket, a listener) and a probe, this test binary run with
// MOAT_LOCAL_PROBE set, that tries to reach it. Every probe is first run
// on the host, where it must reach its canary (so a probe that cannot work
// proves nothing), and then inside a sandbox, where it must fail with its
// own error (exit 1 and "probe:" on stderr), not because it did not run.

const probeEnv = "MOAT_LOCAL_PROBE"

// noRaceWait keeps a probe built with -race from sleeping a second as it
// exits.
const noRaceWait = "GORACE=atexit_sleep_ms=0"

func TestMain(m *testing.M) {
	if os.Getenv(probeEnv) != "" {
		os.Exit(probeMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// probeMain is the probe: "tcp ADDR", "unix PATH" (@NAME for an abstract
// socket), "read FILE", "environ TEXT", "procroot PATH", "resolve NAME",
// "serve TEXT" (listens on a port of 127.0.0.1, prints it, and writes TEXT
// to whoever connects, until killed) or "sandbox ROOT" (the leak test's
// stand-in for moat). It exits 0 when it reached its target, printing
// what it got, and 1 when it could not.
func probeMain(args []string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "probe: usage: probe VERB ARG")
		return 2
	}
	switch verb, arg := args[0], args[1]; verb {
	case "tcp", "unix":
		c, err := net.DialTimeout(verb, arg, 3*time.Second)
		if err != nil {
			return fail(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, err := io.ReadAll(io.LimitReader(c, 256))
		if err != nil {
			return fail(err)
		}
		os.Stdout.Write(b)
	case "read":
		b, err := os.ReadFile(arg)
		if err != nil {
			return fail(err)
		}
		os.Stdout.Write(b)
	case "environ":
		dirs, _ := filepath.Glob("/proc/[0-9]*/environ")
		for _, f := range dirs {
			if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(arg)) {
				fmt.Println(f)
				return 0
			}
		}
		return fail(fmt.Errorf("not in the environ of any of %d processes", len(dirs)))
	case "procroot":
		roots, _ := filepath.Glob("/proc/[0-9]*/root")
		var last error
		for _, r := range roots {
			if last = os.WriteFile(r+arg, []byte("escaped\n"), 0o644); last == nil {
				fmt.Println(r + arg)
				return 0
			}
		}
		return fail(fmt.Errorf("no write through %d roots, last: %v", len(roots), last))
	case "resolve":
		addrs, err := net.DefaultResolver.LookupHost(context.Background(), arg)
		if err != nil {
			return fail(err)
		}
		fmt.Println(strings.Join(addrs, " "))
	case "serve":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		for {
			c, err := ln.Accept()
			if err != nil {
				return fail(err)
			}
			io.WriteString(c, arg)
			c.Close()
		}
	case "sandbox":
		return probeSandbox(arg)
	default:
		fmt.Fprintln(os.Stderr, "probe: unknown verb", verb)
		return 2
	}
	return 0
}

// probeSandbox stands in for moat: it runs a long command in an isolated
// sandbox under root, says "up" once it runs, and waits to be killed.
func probeSandbox(root string) int {
	p := New(Config{Root: root, Logger: quiet})
	h, err := p.Create(context.Background(), sandbox.CreateOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	_, err = h.Exec(context.Background(), "echo up; exec sleep "+os.Getenv("SLEEP"), sandbox.ExecOptions{
		OnLine: func(string) { fmt.Println("up") },
	})
	fmt.Fprintln(os.Stderr, "probe: the command ended:", err)
	return 1
}

func requireStack(t *testing.T) {
	t.Helper()
	requireBwrap(t)
	testenv.RequireBinary(t, "slirp4netns", "slirp4netns")
}

// prober runs the probe in one sandbox.
type prober struct {
	t *testing.T
	h sandbox.Handle
}

func newProber(t *testing.T, network Network) *prober {
	t.Helper()
	return newProberWith(t, Config{Network: network})
}

// newProberWith is newProber for a sandbox of cfg (Root and Logger set).
func newProberWith(t *testing.T, cfg Config) *prober {
	t.Helper()
	requireStack(t)
	cfg.Root, cfg.Logger = t.TempDir(), quiet
	h := create(t, New(cfg))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.CopyIn(t.Context(), exe, "probe"); err != nil {
		t.Fatal(err)
	}
	return &prober{t, h}
}

// inside runs the probe in the sandbox and reports whether it reached its
// target. It fails the test when the probe did not run properly.
func (p *prober) inside(verb, arg string) (reached bool, out string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.t.Context(), 30*time.Second)
	defer cancel()
	r, err := p.h.Exec(ctx, "./probe "+verb+" "+shell.Quote(arg), sandbox.ExecOptions{Env: map[string]string{probeEnv: "1", "GORACE": "atexit_sleep_ms=0"}})
	if err != nil {
		p.t.Fatalf("probe %s %s: %v", verb, arg, err)
	}
	switch {
	case r.ExitCode == 0:
		return true, r.Stdout
	case r.ExitCode == 1 && strings.HasPrefix(r.Stderr, "probe:"):
		return false, strings.TrimSpace(r.Stderr)
	}
	p.t.Fatalf("probe %s %s did not run: exit %d, stderr %q", verb, arg, r.ExitCode, r.Stderr)
	return false, ""
}

// onHost runs the probe on the host, where it must reach its target.
func onHost(t *testing.T, verb, arg string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := exec.CommandContext(t.Context(), exe, verb, arg)
	c.Env = append(os.Environ(), probeEnv+"=1", noRaceWait)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("control: probe %s %s on the host: %v %s", verb, arg, err, stderr.String())
	}
	return string(out)
}

func secret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "canary-" + hex.EncodeToString(b)
}

// canary listens on network/addr and writes text to whoever connects.
func canary(t *testing.T, network, addr, text string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("canary %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, text)
			c.Close()
		}
	}()
	return ln
}

// canaryProcess starts a host process holding env and returns its pid.
func canaryProcess(t *testing.T, env string) int {
	t.Helper()
	c := exec.Command("sleep", "600")
	c.Env = append(os.Environ(), env)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	return c.Process.Pid
}

// TestEscapeProcRoot: a write through /proc/<pid>/root of a host process
// lands on the host without containment; from the sandbox it does not.
func TestEscapeProcRoot(t *testing.T) {
	p := newProber(t, "")
	canaryProcess(t, "MOAT_CANARY=1")
	dir := hostDirOutsideTmp(t)
	target := filepath.Join(dir, "escaped")
	onHost(t, "procroot", target) // writes through /proc/<a host pid>/root
	if _, err := os.Stat(target); err != nil {
		t.Fatalf("control: the host probe did not write %s: %v", target, err)
	}
	os.Remove(target)
	if ok, out := p.inside("procroot", target); ok {
		t.Errorf("wrote through /proc/*/root inside the sandbox: %s", out)
	}
	if _, err := os.Stat(target); err == nil {
		t.Errorf("%s appeared on the host", target)
	}
}

// TestEscapeEnviron: another process's environment, readable through
// /proc/<pid>/environ on the host, is not from the sandbox.
func TestEscapeEnviron(t *testing.T) {
	p := newProber(t, "")
	s := secret(t)
	canaryProcess(t, "MOAT_CANARY_SECRET="+s)
	onHost(t, "environ", "MOAT_CANARY_SECRET="+s)
	if ok, out := p.inside("environ", "MOAT_CANARY_SECRET="+s); ok {
		t.Errorf("read a host process's environment: %s", out)
	}
}

// TestEscapeHomeCanary: a private file in the user's home is not readable.
func TestEscapeHomeCanary(t *testing.T) {
	p := newProber(t, "")
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no home directory:", err)
	}
	f, err := os.CreateTemp(home, ".moat-canary-")
	if err != nil {
		t.Skip("home directory not writable:", err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	s := secret(t)
	f.WriteString(s)
	f.Close()
	if got := onHost(t, "read", f.Name()); got != s {
		t.Fatalf("control: read %q", got)
	}
	if ok, out := p.inside("read", f.Name()); ok {
		t.Errorf("read %s: %q", f.Name(), out)
	}
}

// TestEscapeUnixSocketPath: Unix sockets where hosts keep them (the
// user's home, /tmp, /run or the user's runtime directory) are
// unreachable by path, whatever the network.
func TestEscapeUnixSocketPath(t *testing.T) {
	var dirs []string
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, home)
	}
	dirs = append(dirs, "/tmp")
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		dirs = append(dirs, d)
	} else {
		dirs = append(dirs, "/run")
	}
	s := secret(t)
	var socks []string
	for _, d := range dirs {
		path := filepath.Join(d, ".moat-canary-"+s[len(s)-8:]+".sock")
		if ln, err := net.Listen("unix", path+".probe"); err != nil {
			continue // not writable for this user
		} else {
			ln.Close()
		}
		canary(t, "unix", path, s)
		if got := onHost(t, "unix", path); got != s {
			t.Fatalf("control: %s answered %q", path, got)
		}
		socks = append(socks, path)
	}
	if len(socks) == 0 {
		t.Skip("no directory for a canary socket")
	}
	for _, n := range []Network{NetworkIsolated, NetworkHost} {
		t.Run(string(n), func(t *testing.T) {
			p := newProber(t, n)
			for _, path := range socks {
				if ok, out := p.inside("unix", path); ok {
					t.Errorf("connected to host socket %s: %q", path, out)
				}
			}
		})
	}
}

// TestNetworkReach: what each network reaches. The canaries: a TCP
// listener on the host's loopback (also tried as 10.0.2.2, slirp4netns's
// name for the host), an abstract Unix socket, and a TCP listener on a
// non-loopback address of this machine, the stand-in for the internet
// (there is none in CI): "outbound works" means a connection to another
// address than loopback is made from the host's network and answered.
func TestNetworkReach(t *testing.T) {
	requireStack(t)
	s := secret(t)
	loop := canary(t, "tcp", "127.0.0.1:0", s).Addr().(*net.TCPAddr)
	abstract := "@moat-" + s
	canary(t, "unix", abstract, s)
	targets := []struct {
		name, verb, addr string
		isolated, none   bool // reached under each; host reaches all but the alias
		host             bool
	}{
		{"loopback", "tcp", loop.String(), false, false, true},
		{"loopback as 10.0.2.2", "tcp", net.JoinHostPort("10.0.2.2", strconv.Itoa(loop.Port)), false, false, false},
		{"abstract socket", "unix", abstract, false, false, true},
	}
	if lo6, err := net.Listen("tcp", "[::1]:0"); err == nil {
		lo6.Close()
		targets = append(targets, struct {
			name, verb, addr string
			isolated, none   bool
			host             bool
		}{"loopback ::1", "tcp", canary(t, "tcp", "[::1]:0", s).Addr().String(), false, false, true})
	}
	if ip := outboundIP(); ip != nil {
		out := canary(t, "tcp", net.JoinHostPort(ip.String(), "0"), s).Addr().String()
		targets = append(targets, struct {
			name, verb, addr string
			isolated, none   bool
			host             bool
		}{"outbound " + ip.String(), "tcp", out, true, false, true})
	} else {
		t.Log("no non-loopback IPv4 address on this machine: outbound not tested")
	}
	for _, tg := range targets {
		if tg.host {
			if got := onHost(t, tg.verb, tg.addr); got != s {
				t.Fatalf("control: %s answered %q", tg.addr, got)
			}
		}
	}
	for _, v := range networkVariants() {
		n := v.cfg.Network
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			p := newProberWith(t, v.cfg)
			for _, tg := range targets {
				if tg.name == "loopback as 10.0.2.2" && n != NetworkIsolated {
					continue // only slirp4netns has the alias
				}
				want := map[Network]bool{NetworkIsolated: tg.isolated, NetworkNone: tg.none, NetworkHost: tg.host}[n]
				ok, out := p.inside(tg.verb, tg.addr)
				switch {
				case ok && !want:
					t.Errorf("%s (%s): reached, answer %q", tg.name, tg.addr, out)
				case !ok && want:
					t.Errorf("%s (%s): not reached: %s", tg.name, tg.addr, out)
				case ok && out != s:
					t.Errorf("%s (%s): answer %q, want %q", tg.name, tg.addr, out, s)
				}
			}
		})
	}
}

// networkVariants are the networks, and for isolated and none also both
// ways of joining the sandbox's namespace when this process (root) may do
// it itself: it does, and nsenter does, as it does for other users.
func networkVariants() []struct {
	name string
	cfg  Config
} {
	vs := []struct {
		name string
		cfg  Config
	}{
		{"isolated", Config{Network: NetworkIsolated}},
		{"none", Config{Network: NetworkNone}},
		{"host", Config{Network: NetworkHost}},
	}
	if joinFromThread() {
		vs = append(vs, struct {
			name string
			cfg  Config
		}{"isolated-nsenter", Config{Network: NetworkIsolated, viaNsenter: true}},
			struct {
				name string
				cfg  Config
			}{"none-nsenter", Config{Network: NetworkNone, viaNsenter: true}})
	}
	return vs
}

// outboundIP is a non-loopback IPv4 address of this machine, or nil.
func outboundIP() net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP
		}
	}
	return nil
}

// TestIsolatedDNS: names resolve under isolated through slirp4netns,
// which asks the host's resolvers, whatever /etc/resolv.conf names (a
// loopback resolver would be the sandbox's own loopback).
func TestIsolatedDNS(t *testing.T) {
	requireStack(t)
	const name = "proxy.golang.org"
	r := &net.Resolver{PreferGo: true}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := r.LookupHost(ctx, name); err != nil {
		t.Skipf("the host cannot resolve %s through DNS: %v", name, err)
	}
	p := newProber(t, NetworkIsolated)
	if ok, out := p.inside("resolve", name); !ok {
		t.Errorf("resolving %s: %s", name, out)
	}
	if ok, out := p.inside("read", "/etc/resolv.conf"); !ok || !strings.Contains(out, "nameserver "+slirpDNS+"\n") {
		t.Errorf("/etc/resolv.conf inside: %q", out)
	}
}

// stacks returns the pids of the slirp4netns processes whose parent is
// ppid.
func stacks(ppid int) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		if strings.TrimSpace(string(comm)) != "slirp4netns" {
			continue
		}
		if pp, err := parentPid(pid); err == nil && pp == ppid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// gone reports whether pid has ended (a zombie waiting for a parent that
// is not us counts as ended).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && len(b) > i+2 && b[i+2] == 'Z'
}

// TestIsolatedStackPerSandbox: a sandbox has one slirp4netns from Create
// to Close, whatever its commands do (exit, are cancelled, are killed by
// Close), and none is left after Close.
func TestIsolatedStackPerSandbox(t *testing.T) {
	requireStack(t)
	p := New(Config{Root: t.TempDir(), Logger: quiet})
	me := os.Getpid()
	before := len(stacks(me))
	h := create(t, p)
	if n := len(stacks(me)) - before; n != 1 {
		t.Fatalf("%d slirp4netns for a new sandbox, want 1", n)
	}

	run(t, h, "sleep 1000 & echo started", nil) // a background job too
	run(t, h, "true", nil)
	if n := len(stacks(me)) - before; n != 1 {
		t.Errorf("%d slirp4netns after two commands, want 1", n)
	}

	arg := uniqueSleep()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := h.Exec(ctx, "sleep "+arg, sandbox.ExecOptions{})
		done <- err
	}()
	waitFor(t, "the command to run", func() bool { return len(sleeping(arg)) == 1 })
	if n := len(stacks(me)) - before; n != 1 {
		t.Fatalf("%d slirp4netns with a command running, want 1", n)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Exec after cancel: %v", err)
	}
	if r := run(t, h, "echo still", nil); r.Stdout != "still\n" {
		t.Errorf("Exec after a cancelled one: %+v", r)
	}

	arg = uniqueSleep()
	go func() {
		_, err := h.Exec(t.Context(), "sleep "+arg, sandbox.ExecOptions{})
		done <- err
	}()
	waitFor(t, "the command to run", func() bool { return len(sleeping(arg)) == 1 })
	h.Close(context.Background())
	if err := <-done; !errors.Is(err, sandbox.ErrClosed) {
		t.Errorf("Exec after Close: %v", err)
	}
	if n := len(stacks(me)); n != before {
		t.Errorf("%d slirp4netns left after Close", n-before)
	}
}

// TestIsolatedStackDiesWithMoat: when the process running the sandbox is
// killed outright (no Close, no deferred cleanup), every process it
// started for the sandbox (slirp4netns, the command) ends, and nothing
// holds on to the sandbox's network namespace.
func TestIsolatedStackDiesWithMoat(t *testing.T) {
	requireStack(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	arg := uniqueSleep()
	c := exec.Command(exe, "sandbox", t.TempDir())
	c.Env = append(os.Environ(), probeEnv+"=1", noRaceWait, "SLEEP="+arg)
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Wait()
	defer c.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "up\n" {
		t.Fatalf("the stand-in for moat said %q, stderr %q", line, stderr.String())
	}
	waitFor(t, "the command to run", func() bool { return len(sleeping(arg)) == 1 })
	slirps := stacks(c.Process.Pid)
	if len(slirps) != 1 {
		t.Fatalf("%d slirp4netns under the stand-in for moat, want 1", len(slirps))
	}
	sleeper := sleeping(arg)[0]
	netns, err := os.Readlink("/proc/" + strconv.Itoa(sleeper) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if mine, _ := os.Readlink("/proc/self/ns/net"); netns == mine {
		t.Fatalf("the command runs in the host's network namespace %s", netns)
	}
	started := descendants(c.Process.Pid)
	if err := c.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, pid := range started {
		waitFor(t, fmt.Sprintf("process %d, started by the stand-in for moat, to end", pid), func() bool { return gone(pid) })
	}
	if users := nsUsers(netns); len(users) > 0 {
		t.Errorf("%s still held after the stand-in for moat was killed: %s", netns, strings.Join(users, ", "))
	}
}

// descendants returns the pids of the processes below pid.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, err := parentPid(p); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	var all []int
	next := []int{pid}
	for len(next) > 0 {
		p := next[0]
		next = next[1:]
		all = append(all, children[p]...)
		next = append(next, children[p]...)
	}
	return all
}

// nsUsers names the live processes that are in the namespace ns (as
// "net:[N]") or hold a descriptor of it.
func nsUsers(ns string) []string {
	var users []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || gone(pid) {
			continue
		}
		dir := "/proc/" + e.Name()
		if l, _ := os.Readlink(dir + "/ns/net"); l == ns {
			users = append(users, e.Name()+" (in it)")
			continue
		}
		fds, _ := os.ReadDir(dir + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink(dir + "/fd/" + fd.Name()); l == ns {
				users = append(users, e.Name()+" (fd "+fd.Name()+")")
				break
			}
		}
	}
	return users
}

// TestNetworkUnavailableRefused: a network that cannot be given is an
// error from Create, never a quieter fallback.
func TestNetworkUnavailableRefused(t *testing.T) {
	requireBwrap(t)
	for _, c := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"no slirp4netns", Config{NetStack: "/nonexistent/slirp4netns"}, []string{"slirp4netns", "apt install slirp4netns", "none", "host"}},
		{"slirp4netns that fails", Config{NetStack: "/bin/false"}, []string{"does not work here", "none", "host"}},
		{"isolated without bwrap", Config{Bwrap: BwrapOff, Network: NetworkIsolated}, []string{"needs bubblewrap", "host"}},
		{"none without bwrap", Config{Bwrap: BwrapOff, Network: NetworkNone}, []string{"needs bubblewrap"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Root, c.cfg.Logger = t.TempDir(), quiet
			p := New(c.cfg)
			h, err := p.Create(t.Context(), sandbox.CreateOptions{})
			if err == nil {
				h.Close(context.Background())
				t.Fatal("Create succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, cerr := p.Containment(t.Context()); cerr == nil {
				t.Error("Containment reports no error")
			}
		})
	}
	// The stack is needed only for isolated.
	for _, n := range []Network{NetworkHost, NetworkNone} {
		p := New(Config{Root: t.TempDir(), Logger: quiet, Network: n, NetStack: "/nonexistent/slirp4netns"})
		h := create(t, p)
		if r := run(t, h, "true", nil); r.ExitCode != 0 {
			t.Errorf("network %s: %+v", n, r)
		}
	}
}

// TestContainmentDescribed: Containment and Describe say what is in
// effect, naming host when it is.
func TestContainmentDescribed(t *testing.T) {
	requireStack(t)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "local, bwrap, network isolated (slirp4netns)"},
		{Config{Network: NetworkNone}, "local, bwrap, network none"},
		{Config{Network: NetworkHost}, "local, bwrap, network host (shares this computer's network)"},
		{Config{Bwrap: BwrapOff}, "local, no isolation: plain host processes, host network"},
	} {
		c.cfg.Logger = quiet
		p := New(c.cfg)
		if got := p.Describe(); got != c.want {
			t.Errorf("%+v: Describe() = %q, want %q", c.cfg, got, c.want)
		}
	}
	ct, err := New(Config{Logger: quiet}).Containment(t.Context())
	if err != nil || ct.Bwrap == "" || ct.Network != NetworkIsolated || filepath.Base(ct.Stack) != "slirp4netns" {
		t.Errorf("Containment() = %+v, %v", ct, err)
	}
}

func TestParseNetwork(t *testing.T) {
	for _, s := range []string{"isolated", "none", "host"} {
		if n, err := ParseNetwork(s); err != nil || string(n) != s {
			t.Errorf("ParseNetwork(%q) = %q, %v", s, n, err)
		}
	}
	for _, s := range []string{"", "Host", "bridge"} {
		if _, err := ParseNetwork(s); err == nil || !strings.Contains(err.Error(), "isolated") {
			t.Errorf("ParseNetwork(%q): %v", s, err)
		}
	}
}

// parentPid reads the parent pid from /proc/<pid>/stat.
func parentPid(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, errors.New("bad stat")
	}
	return strconv.Atoi(f[1])
}

func TestResolvConf(t *testing.T) {
	d := t.TempDir()
	file := filepath.Join(d, "resolv.conf")
	os.WriteFile(file, nil, 0o644)
	if got := resolvConfTarget(file); got != file {
		t.Errorf("regular file: %s", got)
	}
	link := filepath.Join(d, "link.conf")
	os.Symlink("../run/systemd/resolve/stub-resolv.conf", link)
	if got, want := resolvConfTarget(link), filepath.Join(filepath.Dir(d), "run/systemd/resolve/stub-resolv.conf"); got != want {
		t.Errorf("link out: %s, want %s", got, want)
	}
	host := "# comment\nnameserver 127.0.0.53\nsearch  corp.example\noptions edns0 trust-ad\n"
	got := string(isolatedResolvConf([]byte(host)))
	if strings.Contains(got, "127.0.0.53") || !strings.Contains(got, "\nnameserver 10.0.2.3\nsearch corp.example\noptions edns0 trust-ad\n") {
		t.Errorf("isolated resolv.conf:\n%s", got)
	}
}
