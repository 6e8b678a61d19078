//go:build linux

package exedevtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/moatdev/moat/internal/testenv"
)

func processRuns(pid int) bool { return isLive(pid) }

// hostPID is the host PID of the process that VM name's sessions see as
// pid: the same number unless the VM is contained (in its own PID
// namespace).
func hostPID(t *testing.T, s *Server, name string, pid int) int {
	t.Helper()
	if !s.Sandboxed() || pid == 0 {
		return pid
	}
	v := s.lookup(name)
	if v == nil {
		t.Fatalf("no VM %s", name)
	}
	v.mu.Lock()
	m := v.mach
	v.mu.Unlock()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", m.pid))
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if n, _ := os.Readlink("/proc/" + e.Name() + "/ns/pid"); n != ns {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/status")
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" && f[len(f)-1] == strconv.Itoa(pid) {
				h, _ := strconv.Atoi(e.Name())
				return h
			}
		}
	}
	t.Fatalf("VM %s has no process %d", name, pid)
	return 0
}

// waitGone waits until process pid no longer runs (gone or a zombie).
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !processRuns(pid) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestVM exercises one VM with a plain x/crypto/ssh client: exit codes,
// signals, stdin, env, stderr, SFTP, concurrency, process groups shared
// across sessions, the lobby's ssh command, and rm.
func TestVM(t *testing.T) {
	t.Run("sandboxed", func(t *testing.T) {
		t.Parallel()
		s := NewServer(t)
		if !s.Sandboxed() {
			if exec.Command("bwrap", "--ro-bind", "/", "/", "true").Run() == nil {
				t.Fatal("bwrap works here but the emulator did not use it")
			}
			testenv.Unavailable(t, "bubblewrap does not work here (Debian package bubblewrap)")
		}
		testVM(t, s)
	})
	t.Run("plain", func(t *testing.T) {
		t.Parallel()
		testVM(t, NewServer(t, WithoutSandbox()))
	})
}

func testVM(t *testing.T, s *Server) {
	outer := t
	t.Logf("sandboxed: %v", s.Sandboxed())
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	a := newVM(t, lobby, "--name=test-vm --env=FROM_NEW=yes")
	if a.VMName != "test-vm" || a.SSHHost != "127.0.0.1" || a.SSHPort == 0 || a.SSHUser != "" {
		t.Fatalf("new answered %+v", a)
	}
	if got := s.VMs(); len(got) != 1 || got[0] != "test-vm" {
		t.Fatalf("VMs() = %v", got)
	}
	// The VM presents the lobby's host key: mustDial pins it.
	c := mustDial(t, s, a.addr(), "whoever")
	wantHome := "/home/exedev"
	if !s.Sandboxed() {
		wantHome, _ = s.VMHome("test-vm")
	}

	t.Run("exit codes", func(t *testing.T) {
		if r := run(c, "true", nil); r.err != nil || r.code != 0 {
			t.Errorf("true: %+v", r)
		}
		if r := run(c, "echo out; echo err >&2; exit 3", nil); r.err != nil || r.code != 3 || r.stdout != "out\n" || r.stderr != "err\n" {
			t.Errorf("exit 3: %+v", r)
		}
		if r := run(c, "kill -9 $$", nil); r.err != nil || r.signal != "KILL" {
			t.Errorf("kill -9 $$: %+v", r)
		}
	})
	t.Run("home, env, stdin", func(t *testing.T) {
		r := run(c, `echo "$HOME|$PWD|$FROM_NEW|$FOO"`, nil, "FOO", "bar baz")
		if want := wantHome + "|" + wantHome + "|yes|bar baz\n"; r.err != nil || r.stdout != want {
			t.Errorf("got %+v, want stdout %q", r, want)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB
		r = run(c, "wc -c", big)
		if strings.TrimSpace(r.stdout) != strconv.Itoa(len(big)) {
			t.Errorf("wc -c of 4 MiB stdin: %+v", r)
		}
		if r := run(c, "test -e workspace", nil); r.code != 1 {
			t.Errorf("$HOME/workspace exists in a fresh VM: %+v", r)
		}
	})
	t.Run("signal request", func(t *testing.T) {
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		out, _ := sess.StdoutPipe()
		if err := sess.Start("echo started; sleep 100"); err != nil {
			t.Fatal(err)
		}
		line := make([]byte, 8)
		io.ReadFull(out, line)
		if err := sess.Signal(ssh.SIGTERM); err != nil {
			t.Fatal(err)
		}
		var ee *ssh.ExitError
		if err := sess.Wait(); !errors.As(err, &ee) || ee.Signal() != "TERM" {
			t.Errorf("after SIGTERM: %v", err)
		}
	})
	t.Run("sftp", func(t *testing.T) {
		sc, err := sftp.NewClient(c)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		wd, err := sc.Getwd()
		if err != nil || wd != wantHome {
			t.Fatalf("Getwd = %q, %v; want %q", wd, err, wantHome)
		}
		data := bytes.Repeat([]byte{0, 1, 2, 255, '\n'}, 100000)
		if err := sc.MkdirAll("dir/sub"); err != nil {
			t.Fatal(err)
		}
		f, err := sc.Create(wantHome + "/dir/sub/file.bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := sc.Chmod("dir/sub/file.bin", 0o755); err != nil {
			t.Fatal(err)
		}
		r := run(c, "stat -c %a dir/sub/file.bin", nil)
		if !strings.HasSuffix(r.stdout, "755\n") {
			t.Errorf("file written over SFTP: %+v", r)
		}
		g, err := sc.Open("dir/sub/file.bin")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(g)
		g.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("read back %d bytes (%v), want %d", len(got), err, len(data))
		}
		if s.Sandboxed() {
			if _, err := sc.Create("/etc/exedevtest-should-fail"); err == nil {
				t.Errorf("SFTP wrote outside the VM's writable tree")
			}
			if err := run(c, "echo shared > /tmp/t", nil); err.code != 0 {
				t.Fatal(err)
			}
			g, err := sc.Open("/tmp/t")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(g)
			g.Close()
			if string(b) != "shared\n" {
				t.Errorf("/tmp over SFTP: %q", b)
			}
		}
	})
	t.Run("shell", func(t *testing.T) {
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		var out bytes.Buffer
		sess.Stdout = &out
		sess.Stdin = strings.NewReader("echo from-shell $HOME\nexit 5\n")
		if err := sess.Shell(); err != nil {
			t.Fatal(err)
		}
		var ee *ssh.ExitError
		if err := sess.Wait(); !errors.As(err, &ee) || ee.ExitStatus() != 5 || out.String() != "from-shell "+wantHome+"\n" {
			t.Errorf("shell: %v, %q", err, out.String())
		}
	})
	t.Run("concurrent sessions and connections", func(t *testing.T) {
		clients := []*ssh.Client{c}
		for range 3 {
			clients = append(clients, mustDial(t, s, a.addr(), "other"))
		}
		var wg sync.WaitGroup
		errs := make(chan string, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := run(clients[i%len(clients)], fmt.Sprintf("sleep 0.2; echo %d; exit %d", i, i%4), nil)
				if r.err != nil || r.stdout != fmt.Sprintf("%d\n", i) || r.code != i%4 {
					errs <- fmt.Sprintf("session %d: %+v", i, r)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	})
	t.Run("kill across sessions", func(t *testing.T) {
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		out, _ := sess.StdoutPipe()
		if err := sess.Start("echo $$; sleep 1000; echo survived"); err != nil {
			t.Fatal(err)
		}
		var line []byte
		for b := make([]byte, 1); ; {
			if _, err := out.Read(b); err != nil || b[0] == '\n' {
				break
			}
			line = append(line, b[0])
		}
		pgid, err := strconv.Atoi(string(line))
		if err != nil {
			t.Fatalf("pid line %q", line)
		}
		r := run(c, fmt.Sprintf("ps -o pgid= -p %d; kill -s KILL -- -%d", pgid, pgid), nil)
		if r.err != nil || r.code != 0 || strings.TrimSpace(r.stdout) != strconv.Itoa(pgid) {
			t.Fatalf("kill from another session: %+v", r)
		}
		done := make(chan error, 1)
		go func() { done <- sess.Wait() }()
		select {
		case err := <-done:
			var ee *ssh.ExitError
			if !errors.As(err, &ee) || ee.Signal() != "KILL" {
				t.Errorf("killed session ended with %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the killed session did not end")
		}
	})
	t.Run("client closes session early", func(t *testing.T) {
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, _ := sess.StdoutPipe()
		sess.Start("echo $$; exec sleep 1000")
		var pid int
		fmt.Fscan(out, &pid)
		pid = hostPID(t, s, "test-vm", pid)
		sess.Close()
		if pid == 0 || !waitGone(pid, 5*time.Second) {
			t.Errorf("process %d still runs after the client closed its channel", pid)
		}
	})
	t.Run("lobby ssh command", func(t *testing.T) {
		r := lobbyRun(t, lobby, `ssh test-vm echo via-lobby '$HOME'; exit 4`)
		if r.stdout != "via-lobby "+wantHome+"\n" || r.code != 4 {
			t.Errorf("ssh through the lobby: %+v", r)
		}
		r = lobbyRun(t, lobby, "ssh no-such-vm true")
		if r.code != 1 || r.stdout != "VM \"no-such-vm\" not found\n" {
			t.Errorf("ssh to a missing VM: %+v", r)
		}
	})
	t.Run("cp copies the disk", func(t *testing.T) {
		run(c, "echo kept > kept.txt", nil)
		lobbyRun(t, lobby, "cp test-vm test-copy --json")
		b := newClientForVM(t, s, lobby, "test-copy")
		if r := run(b, "cat kept.txt; echo $FROM_NEW", nil); r.stdout != "kept\nyes\n" {
			t.Errorf("copy: %+v", r)
		}
		if r := lobbyRun(t, lobby, "rm test-copy"); r.code != 0 {
			t.Errorf("rm copy: %+v", r)
		}
	})
	t.Run("restart", func(t *testing.T) {
		sess, _ := c.NewSession()
		out, _ := sess.StdoutPipe()
		sess.Start("echo $$; sleep 1000")
		var pid int
		fmt.Fscan(out, &pid)
		pid = hostPID(t, s, "test-vm", pid)
		run(c, "echo disk > on-disk; echo tmp > /tmp/on-tmp", nil)
		if r := lobbyRun(t, lobby, "restart test-vm"); r.code != 0 {
			t.Fatalf("restart: %+v", r)
		}
		if pid == 0 || !waitGone(pid, 5*time.Second) {
			t.Errorf("process %d survived restart", pid)
		}
		c = mustDial(outer, s, a.addr(), "exedev") // used by later subtests
		want := "disk\n"
		if s.Sandboxed() {
			want += "gone\n" // the VM's own /tmp starts empty
		} else {
			want += "tmp\n" // unsandboxed, /tmp is the host's
		}
		if r := run(c, "cat on-disk; cat /tmp/on-tmp 2>/dev/null || echo gone; rm -f /tmp/on-tmp", nil); r.stdout != want {
			t.Errorf("after restart: %+v, want %q", r, want)
		}
	})
	t.Run("rm", func(t *testing.T) {
		// A long command, and a daemon that left its process group.
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, _ := sess.StdoutPipe()
		sess.Start("setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; sleep 1000")
		var daemon int
		fmt.Fscan(out, &daemon)
		daemon = hostPID(t, s, "test-vm", daemon)
		waitErr := make(chan error, 1)
		go func() { waitErr <- sess.Wait() }()

		r := lobbyRun(t, lobby, "rm test-vm --json")
		if r.code != 0 || r.stdout != `{"deleted":["test-vm"],"failed":[]}`+"\n" {
			t.Fatalf("rm: %+v", r)
		}
		if got := s.VMs(); len(got) != 0 {
			t.Errorf("VMs() after rm = %v", got)
		}
		select {
		case err := <-waitErr:
			var ee *ssh.ExitError
			if err == nil || errors.As(err, &ee) && ee.ExitStatus() == 0 {
				t.Errorf("session on a deleted VM ended with %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("session on a deleted VM did not end")
		}
		if daemon == 0 || !waitGone(daemon, 5*time.Second) {
			t.Errorf("daemon %d survived rm", daemon)
		}
		if _, err := net.DialTimeout("tcp", a.addr(), time.Second); err == nil {
			t.Errorf("the deleted VM's port still accepts connections")
		}
		home, _ := filepath.Glob(filepath.Join(filepath.Dir(s.KeyFile()), "..", "vms", "test-vm.*"))
		if len(home) != 0 {
			t.Errorf("VM directory left behind: %v", home)
		}
	})
}

// newClientForVM connects to an existing VM found with ls.
func newClientForVM(t *testing.T, s *Server, lobby *ssh.Client, name string) *ssh.Client {
	t.Helper()
	addr, ok := s.VMAddr(name)
	if !ok {
		t.Fatalf("no VM %s", name)
	}
	return mustDial(t, s, addr, "exedev")
}

func TestReadyDelay(t *testing.T) {
	t.Run("own port", func(t *testing.T) { t.Parallel(); testReadyDelay(t) })
	t.Run("legacy routing", func(t *testing.T) { t.Parallel(); testReadyDelay(t, WithLegacyRouting()) })
}

func testReadyDelay(t *testing.T, opts ...Option) {
	const delay = 3 * time.Second // long enough that the first dial comes before it
	s := NewServer(t, append(opts, WithReadyDelay(delay), WithoutSandbox())...)
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	start := time.Now()
	a := newVM(t, lobby, "--name=slow-vm")
	sg := signer(t, s)
	user := a.SSHUser
	if user == "" {
		user = "exedev"
	}
	_, err := dial(s, sg, a.addr(), user, 2*time.Second)
	if err == nil {
		t.Fatal("connected to a VM that is not ready")
	}
	t.Logf("not ready: %v", err)
	if time.Since(start) < delay && !strings.Contains(err.Error(), "reset") && !errors.Is(err, io.EOF) {
		t.Errorf("not-ready error = %v, want a connection reset", err)
	}
	if r := lobbyRun(t, lobby, "ls --json"); !strings.Contains(r.stdout, `"status":"running"`) {
		t.Errorf("ls during the delay: %+v", r)
	}
	var c *ssh.Client
	for time.Since(start) < 15*time.Second {
		if c, err = dial(s, sg, a.addr(), user, 2*time.Second); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("VM never became ready: %v", err)
	}
	defer c.Close()
	if el := time.Since(start); el < delay {
		t.Errorf("ready after %v, before the %v delay", el, delay)
	}
	if r := run(c, "echo ok", nil); r.stdout != "ok\n" {
		t.Errorf("exec after ready: %+v", r)
	}
}

func TestDropMidExec(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDropMidExec(2), WithoutSandbox())
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	a := newVM(t, lobby, "--name=drop-vm")
	c := mustDial(t, s, a.addr(), "exedev")
	if r := run(c, "echo one", nil); r.err != nil || r.stdout != "one\n" {
		t.Fatalf("first exec: %+v", r)
	}
	start := time.Now()
	r := run(c, "echo first; sleep 5; echo never", nil)
	if r.err == nil {
		t.Fatalf("second exec survived the drop: %+v", r)
	}
	t.Logf("dropped: %v", r.err)
	var ee *ssh.ExitError
	if errors.As(r.err, &ee) {
		t.Errorf("drop gave an exit status: %v", r.err)
	}
	if r.stdout != "first\n" || time.Since(start) > 3*time.Second {
		t.Errorf("drop: stdout %q after %v (err %v)", r.stdout, time.Since(start), r.err)
	}
	if err := c.Wait(); err == nil {
		t.Log("connection closed cleanly")
	}
	c2 := mustDial(t, s, a.addr(), "exedev")
	if r := run(c2, "echo three", nil); r.err != nil || r.stdout != "three\n" {
		t.Errorf("exec after the drop: %+v", r)
	}
}

func TestBurstLimit(t *testing.T) {
	t.Parallel()
	const block = 700 * time.Millisecond
	s := NewServer(t, WithBurstLimit(3, 5*time.Second, block), WithoutSandbox())
	sg := signer(t, s)
	for i := range 3 {
		c, err := dial(s, sg, s.LobbyAddr(), "moat", 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		c.Close()
	}
	start := time.Now()
	_, err := dial(s, sg, s.LobbyAddr(), "moat", 300*time.Millisecond)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("4th connection in the burst: %v, want a handshake timeout", err)
	}
	// Retry until let in: held connections are not counted, so retrying
	// does not extend the block.
	var c *ssh.Client
	for deadline := start.Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err = dial(s, sg, s.LobbyAddr(), "moat", time.Second); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("still not let in 10s after the block began: %v", err)
	}
	defer c.Close()
	// The block began after start, so no admission can come sooner.
	if el := time.Since(start); el < block {
		t.Errorf("let in %v after the 4th connection, before the %v block ended", el, block)
	}
	if r := run(c, "whoami --json", nil); r.code != 0 {
		t.Errorf("whoami after the block: %+v", r)
	}
}

func TestLegacyRouting(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithLegacyRouting(), WithoutSandbox())
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	a := newVM(t, lobby, "--name=legacy-one")
	b := newVM(t, lobby, "--name=legacy-two")
	if a.SSHUser != "vm+legacy-one" || a.SSHDest != "vm+legacy-one@127.0.0.1" || a.SSHPort != b.SSHPort {
		t.Fatalf("legacy answers %+v %+v", a, b)
	}
	for _, v := range []newAnswer{a, b} {
		c := mustDial(t, s, v.addr(), v.SSHUser)
		if r := run(c, "basename $HOME; cat name 2>/dev/null || echo "+v.VMName+" > name", nil); r.err != nil {
			t.Fatal(r.err)
		}
	}
	c := mustDial(t, s, b.addr(), b.SSHUser)
	if r := run(c, "cat name", nil); r.stdout != "legacy-two\n" {
		t.Errorf("routing by user reached the wrong VM: %+v", r)
	}
	if _, err := dial(s, signer(t, s), a.addr(), "exedev", 2*time.Second); err == nil {
		t.Errorf("the shared port let in a user that names no VM")
	}
}

func TestUnknownKeyRefused(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithoutSandbox())
	_, other, _ := generateTestKey(t)
	if _, err := dial(s, other, s.LobbyAddr(), "moat", 5*time.Second); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("lobby with an unknown key: %v", err)
	}
}

func TestConfigAndKeys(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithoutSandbox())
	cfg := s.Config()
	if cfg.Lobby != s.LobbyAddr() || cfg.IdentityFile != s.KeyFile() || cfg.SSH.SSHConfigFile != "none" || cfg.SSH.AgentSocket != "none" || cfg.SSH.HomeDir == "" {
		t.Errorf("Config() = %+v", cfg)
	}
	fi, err := os.Stat(s.KeyFile())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi, err)
	}
	cb, err := knownhosts.New(cfg.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := net.ResolveTCPAddr("tcp", s.LobbyAddr())
	if err := cb(s.LobbyAddr(), addr, s.HostKey()); err != nil {
		t.Errorf("known_hosts does not hold the lobby key: %v", err)
	}
	lobby := mustDial(t, s, s.LobbyAddr(), "someone")
	lobbyRun(t, lobby, "whoami --json")
	lobbyRun(t, lobby, "rm nothing-here")
	tr := s.Transcript()
	if len(tr) != 2 || tr[0].User != "someone" || tr[0].ExitCode != 0 || !strings.HasPrefix(tr[0].Stdout, `{"email"`) ||
		tr[1].Command != "rm nothing-here" || tr[1].ExitCode != 1 || len(tr[1].Args) != 2 {
		t.Errorf("Transcript() = %+v", tr)
	}
	if !strings.Contains(s.Instructions(), s.LobbyAddr()) {
		t.Errorf("Instructions() = %q", s.Instructions())
	}
}

// TestCloseKillsEverything checks that Close leaves no process or file.
func TestCloseKillsEverything(t *testing.T) {
	t.Parallel()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	a := newVM(t, lobby, "--name=close-vm")
	c := mustDial(t, s, a.addr(), "exedev")
	sess, _ := c.NewSession()
	out, _ := sess.StdoutPipe()
	sess.Start("nohup sleep 1000 >/dev/null 2>&1 & echo $!; sleep 1000")
	var pid int
	fmt.Fscan(out, &pid)
	pid = hostPID(t, s, "close-vm", pid)
	root := filepath.Dir(filepath.Dir(s.KeyFile()))
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if pid == 0 || !waitGone(pid, 5*time.Second) {
		t.Errorf("background process %d survived Close", pid)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("temp dir %s left behind: %v", root, err)
	}
}

// TestOpenSSH drives the emulator with the real ssh client once.
func TestOpenSSH(t *testing.T) {
	t.Parallel()
	sshBin := testenv.RequireBinary(t, "ssh", "openssh-client")
	s := NewServer(t)
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	a := newVM(t, lobby, "--name=openssh-vm")
	known := filepath.Join(t.TempDir(), "known_hosts")
	hosts := []string{knownhosts.Normalize(s.LobbyAddr()), knownhosts.Normalize(a.addr())}
	os.WriteFile(known, []byte(knownhosts.Line(hosts, s.HostKey())+"\n"), 0o600)
	sshc := func(port int, cmd string) (string, error) {
		c := exec.Command(sshBin, "-F", "/dev/null", "-i", s.KeyFile(),
			"-o", "UserKnownHostsFile="+known, "-o", "StrictHostKeyChecking=yes",
			"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
			"-p", strconv.Itoa(port), "127.0.0.1", cmd)
		c.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := c.CombinedOutput()
		return string(out), err
	}
	out, err := sshc(s.LobbyPort(), "ls --json")
	if err != nil || !strings.HasPrefix(out, `{"vms":[{"vm_name":"openssh-vm"`) {
		t.Errorf("ssh lobby ls --json: %v: %s", err, out)
	}
	out, err = sshc(a.SSHPort, "echo hi")
	if err != nil || out != "hi\n" {
		t.Errorf("ssh VM echo hi: %v: %q", err, out)
	}
}
