// Package sshdtest runs a real OpenSSH sshd on loopback for tests and
// benchmarks: its own port, host key, client key, authorized_keys and
// known_hosts file, torn down by Close.
//
// When the process runs as root, sessions log in as the dedicated user
// "moat-test" (created on first use, shell /bin/sh, home /home/moat-test);
// otherwise as the current user, the only one a non-root sshd can serve.
package sshdtest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/testenv"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TestUser is the login user when the tests run as root.
const TestUser = "moat-test"

// markerVar is set in the environment of every command a Server runs.
const markerVar = "SSHDTEST_SERVER"

// Options configures a Server.
type Options struct {
	// MaxSessions is sshd's MaxSessions; 0 keeps OpenSSH's default (10).
	MaxSessions int
	// AuthorizedKeys are authorized for User besides the generated client key.
	AuthorizedKeys []ssh.PublicKey
	// ExtraConfig lines are appended to sshd_config.
	ExtraConfig []string
	// LogLevel is sshd's LogLevel; "" means ERROR. sshd logs go to Logs().
	LogLevel string
}

// Server is one running sshd.
type Server struct {
	Addr           string // "127.0.0.1:PORT"
	Host           string // "127.0.0.1"
	Port           int
	User           string // login user
	HomeDir        string // that user's home
	KeyFile        string // unencrypted ed25519 private key authorized for User
	KnownHostsFile string // holds HostKey for [127.0.0.1]:PORT
	HostKey        ssh.PublicKey
	// Signer is the client key in KeyFile, ready for ssh.PublicKeys.
	Signer ssh.Signer

	dir            string
	id             string // marks the environment of this server's sessions
	sshdPath       string
	cfgFile        string
	pidFile        string
	authorizedFile string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	logFile string
	orphans []int // connection processes of a stopped listener
	closed  bool
	authMu  sync.Mutex
}

// Start starts a Server for a test and closes it when the test ends. It skips
// the test (fails it in CI) when sshd is not installed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	testenv.RequireBinary(t, "sshd", "openssh-server")
	s, err := New(opts)
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("sshdtest: close: %v", err)
		}
	})
	return s
}

// New starts an sshd on a free loopback port. The caller must Close it.
func New(opts Options) (*Server, error) {
	sshdPath, ok := testenv.LookPath("sshd")
	if !ok {
		return nil, errors.New("sshd is not installed (Debian package openssh-server)")
	}
	s := &Server{Host: "127.0.0.1", sshdPath: sshdPath}
	ok = false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	if err := s.setupUser(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sshdtest-")
	if err != nil {
		return nil, err
	}
	s.dir = dir
	s.id = filepath.Base(dir)
	s.logFile = filepath.Join(dir, "sshd.log")
	// The login user (moat-test when root) must read authorized_keys: sshd
	// reads it with the user's privileges.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.writeKeys(opts.AuthorizedKeys); err != nil {
		return nil, err
	}

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.Port = port
		s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(port))
		if err := s.writeConfig(opts); err != nil {
			return nil, err
		}
		lastErr = s.start()
		if lastErr == nil {
			break
		}
		if !errors.Is(lastErr, errBind) {
			return nil, lastErr
		}
	}
	if lastErr != nil {
		return nil, lastErr
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey)
	s.KnownHostsFile = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(s.KnownHostsFile, []byte(line+"\n"), 0o600); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// Dir is the server's private temp directory (keys, config, pid file).
func (s *Server) Dir() string { return s.dir }

// Logs returns the last 64 KiB sshd wrote to stderr.
func (s *Server) Logs() string { return s.logsSince(0) }

func (s *Server) logsSince(offset int64) string {
	f, err := os.Open(s.logFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	if max := st.Size() - 64<<10; offset < max {
		offset = max
	}
	b := make([]byte, st.Size()-offset)
	n, _ := f.ReadAt(b, offset)
	return string(b[:n])
}

func (s *Server) logSize() int64 {
	st, err := os.Stat(s.logFile)
	if err != nil {
		return 0
	}
	return st.Size()
}

// ClientConfig returns an ssh.ClientConfig that logs in as User with the
// client key and checks the host key.
func (s *Server) ClientConfig() *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.Signer)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey),
		Timeout:         10 * time.Second,
	}
}

// AuthorizeKey adds a public key to User's authorized_keys on this server.
// sshd reads the file at each login, so it applies to the next connection.
func (s *Server) AuthorizeKey(pub ssh.PublicKey) error {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	f, err := os.OpenFile(s.authorizedFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(ssh.MarshalAuthorizedKey(pub))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Stop stops the listening sshd: new connections are refused, while
// connections already established live on (OpenSSH serves each in its own
// process). Restart starts it again on the same port.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

// Restart stops the listening sshd, if running, and starts it again on the
// same port with the same keys. Established connections are not touched; use
// KillConnections for that.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("sshdtest: server closed")
	}
	if err := s.stopLocked(); err != nil {
		return err
	}
	var err error
	for range 50 { // the port may take a moment to free up
		s.mu.Unlock()
		err = s.start()
		s.mu.Lock()
		if err == nil || !errors.Is(err, errBind) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// KillConnections kills (SIGKILL) every process serving an established
// connection, and the users' commands under them, so that clients see their
// connections die. The listener keeps running.
func (s *Server) KillConnections() error {
	s.mu.Lock()
	orphans := s.orphans
	s.orphans = nil
	s.mu.Unlock()
	if err := killTrees(orphans, true); err != nil {
		return err
	}
	if pid := s.pid(); pid != 0 {
		return killTrees([]int{pid}, false)
	}
	return nil
}

// Connections returns the number of connections the listener is serving (its
// child processes). It works on Linux only.
func (s *Server) Connections() (int, error) {
	pid := s.pid()
	if pid == 0 {
		return 0, nil
	}
	kids, err := children(pid)
	return len(kids), err
}

// Close stops sshd, kills every connection it serves and every command its
// sessions started that still runs (found by an environment variable sshd
// sets, on Linux), and removes the temp files. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var err error
	if s.cmd != nil {
		if kerr := killTrees([]int{s.cmd.Process.Pid}, false); kerr != nil {
			err = kerr
		}
		if serr := s.stopLocked(); serr != nil && err == nil {
			err = serr
		}
	}
	if kerr := killTrees(s.orphans, true); kerr != nil && err == nil {
		err = kerr
	}
	s.orphans = nil
	if s.id != "" {
		killMarked(markerVar + "=" + s.id)
	}
	s.mu.Unlock()
	if s.dir != "" {
		if rerr := os.RemoveAll(s.dir); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

func (s *Server) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	select {
	case <-s.exited:
		return 0
	default:
	}
	return s.cmd.Process.Pid
}

func (s *Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	select {
	case <-exited:
		return nil
	default:
	}
	// The connections outlive the listener; remember them for
	// KillConnections and Close.
	if kids, err := children(cmd.Process.Pid); err == nil {
		s.orphans = append(s.orphans, kids...)
	}
	_ = terminate(cmd.Process)
	select {
	case <-exited:
		return nil
	case <-time.After(5 * time.Second):
	}
	_ = cmd.Process.Kill()
	<-exited
	return nil
}

var errBind = errors.New("sshd could not bind its port")

// start runs sshd and waits until it serves. Called without s.mu held.
func (s *Server) start() error {
	// sshd logs to a file rather than a pipe: the processes serving
	// connections inherit it, and Wait would wait for them to close a pipe.
	logf, err := os.OpenFile(s.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.sshdPath, "-D", "-e", "-f", s.cfgFile)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	_ = os.Remove(s.pidFile)
	mark := s.logSize()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	fail := func(err error) error {
		s.mu.Lock()
		_ = s.stopLocked()
		s.mu.Unlock()
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			logs := s.logsSince(mark)
			if strings.Contains(logs, "Address already in use") || strings.Contains(logs, "Cannot bind any address") {
				return fmt.Errorf("%w: %s", errBind, strings.TrimSpace(logs))
			}
			return fmt.Errorf("sshd exited at start (%s): %s", cmd.ProcessState, strings.TrimSpace(logs))
		default:
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("sshd did not start within 15s; its log: %s", strings.TrimSpace(s.logsSince(mark))))
		}
		// sshd writes its pid file once it listens: then the port is ours.
		if b, err := os.ReadFile(s.pidFile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(cmd.Process.Pid) {
			if err := readBanner(s.Addr); err == nil {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readBanner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	// Say hello so that sshd does not log a failed key exchange.
	_, _ = c.Write([]byte("SSH-2.0-sshdtest-probe\r\n"))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("unexpected banner %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) writeKeys(extra []ssh.PublicKey) error {
	// Host key.
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	hostPEM, err := ssh.MarshalPrivateKey(hostPriv, "sshdtest host key")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "ssh_host_ed25519_key"), pem.EncodeToMemory(hostPEM), 0o600); err != nil {
		return err
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return err
	}
	s.HostKey = hostSigner.PublicKey()

	// Client key.
	_, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	clientPEM, err := ssh.MarshalPrivateKey(clientPriv, "sshdtest client key")
	if err != nil {
		return err
	}
	s.KeyFile = filepath.Join(s.dir, "id_ed25519")
	if err := os.WriteFile(s.KeyFile, pem.EncodeToMemory(clientPEM), 0o600); err != nil {
		return err
	}
	if s.Signer, err = ssh.NewSignerFromKey(clientPriv); err != nil {
		return err
	}
	if err := os.WriteFile(s.KeyFile+".pub", ssh.MarshalAuthorizedKey(s.Signer.PublicKey()), 0o644); err != nil {
		return err
	}

	var ak bytes.Buffer
	ak.Write(ssh.MarshalAuthorizedKey(s.Signer.PublicKey()))
	for _, k := range extra {
		ak.Write(ssh.MarshalAuthorizedKey(k))
	}
	s.authorizedFile = filepath.Join(s.dir, "authorized_keys")
	if err := os.WriteFile(s.authorizedFile, ak.Bytes(), 0o644); err != nil {
		return err
	}
	// WriteFile's mode is filtered by the umask; sshd needs it readable.
	return os.Chmod(s.authorizedFile, 0o644)
}

func (s *Server) writeConfig(opts Options) error {
	s.cfgFile = filepath.Join(s.dir, "sshd_config")
	s.pidFile = filepath.Join(s.dir, "sshd.pid")
	logLevel := opts.LogLevel
	if logLevel == "" {
		logLevel = "ERROR"
	}
	lines := []string{
		"ListenAddress " + s.Addr,
		"HostKey " + filepath.Join(s.dir, "ssh_host_ed25519_key"),
		"PidFile " + s.pidFile,
		"AuthorizedKeysFile " + s.authorizedFile,
		"AllowUsers " + s.User,
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"HostbasedAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin prohibit-password",
		"UseDNS no",
		"PrintMotd no",
		"PrintLastLog no",
		"Banner none",
		"X11Forwarding no",
		"AllowAgentForwarding no",
		"Subsystem sftp internal-sftp",
		"LogLevel " + logLevel,
		"MaxStartups 1000",
		// Marks every command's environment so that Close can find the
		// commands a client left running (sshd does not kill them when a
		// channel or connection closes).
		"SetEnv " + markerVar + "=" + s.id,
	}
	if opts.MaxSessions > 0 {
		lines = append(lines, "MaxSessions "+strconv.Itoa(opts.MaxSessions))
	}
	// OpenSSH 9.8 added per-source penalties, which would lock tests that
	// fail authentication on purpose out of their own server.
	if maj, min := sshdVersion(s.sshdPath); maj > 9 || (maj == 9 && min >= 8) {
		lines = append(lines, "PerSourcePenalties no")
	}
	lines = append(lines, opts.ExtraConfig...)
	return os.WriteFile(s.cfgFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

var (
	versionOnce            sync.Once
	versionMaj, versionMin int
)

func sshdVersion(path string) (int, int) {
	versionOnce.Do(func() {
		out, _ := exec.Command(path, "-V").CombinedOutput()
		m := regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)`).FindSubmatch(out)
		if m != nil {
			versionMaj, _ = strconv.Atoi(string(m[1]))
			versionMin, _ = strconv.Atoi(string(m[2]))
		}
	})
	return versionMaj, versionMin
}

// setupUser decides the login user: moat-test when root (created if
// missing), else the current user.
func (s *Server) setupUser() error {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return err
		}
		s.User, s.HomeDir = u.Username, u.HomeDir
		return nil
	}
	// The privilege separation directory sshd chroots into.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return fmt.Errorf("create /run/sshd: %w", err)
	}
	if err := ensureTestUser(); err != nil {
		return err
	}
	u, err := user.Lookup(TestUser)
	if err != nil {
		return err
	}
	s.User, s.HomeDir = u.Username, u.HomeDir
	return nil
}

var userOnce struct {
	sync.Mutex
	done bool
}

// ensureTestUser creates the moat-test user unless it exists. Several test
// processes may race here: useradd locks /etc/passwd itself, and whoever
// loses sees the user exist on the next look.
func ensureTestUser() error {
	userOnce.Lock()
	defer userOnce.Unlock()
	if userOnce.done {
		return nil
	}
	var lastErr error
	for attempt := 0; attempt < 100; attempt++ {
		if _, err := user.Lookup(TestUser); err == nil {
			lastErr = nil
			break
		}
		out, err := exec.Command("useradd", "--create-home", "--home-dir", "/home/"+TestUser,
			"--shell", "/bin/sh", "--password", "*", "--user-group", TestUser).CombinedOutput()
		if err == nil {
			lastErr = nil
			break
		}
		lastErr = fmt.Errorf("useradd %s: %v: %s", TestUser, err, strings.TrimSpace(string(out)))
		time.Sleep(50 * time.Millisecond)
	}
	if lastErr != nil {
		return lastErr
	}
	// OpenSSH without PAM refuses a locked account ("!" password): make
	// sure the password field is "*" (no password, not locked).
	if b, err := os.ReadFile("/etc/shadow"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.SplitN(line, ":", 3)
			if len(f) >= 2 && f[0] == TestUser && strings.HasPrefix(f[1], "!") {
				if out, err := exec.Command("usermod", "--password", "*", TestUser).CombinedOutput(); err != nil {
					return fmt.Errorf("usermod %s: %v: %s", TestUser, err, strings.TrimSpace(string(out)))
				}
			}
		}
	}
	// The home directory may be missing if the user was made elsewhere.
	home := "/home/" + TestUser
	if u, err := user.Lookup(TestUser); err == nil {
		home = u.HomeDir
		if _, err := os.Stat(home); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(home, 0o755); err == nil {
				uid, _ := strconv.Atoi(u.Uid)
				gid, _ := strconv.Atoi(u.Gid)
				_ = os.Chown(home, uid, gid)
			}
		}
	}
	// Sandbox Sudo: let the test user become root without a password, as
	// exe.dev's exedev user can. Written atomically: tests run in parallel.
	if _, err := os.Stat("/etc/sudoers.d"); err == nil {
		const rule = TestUser + " ALL=(ALL) NOPASSWD:ALL\n"
		dst := "/etc/sudoers.d/" + TestUser
		if b, err := os.ReadFile(dst); err != nil || string(b) != rule {
			tmp := fmt.Sprintf("%s.%d.tmp", dst, os.Getpid())
			if err := os.WriteFile(tmp, []byte(rule), 0o440); err != nil {
				return fmt.Errorf("write %s: %w", tmp, err)
			}
			if err := os.Rename(tmp, dst); err != nil {
				os.Remove(tmp)
				return fmt.Errorf("install %s: %w", dst, err)
			}
		}
	}
	userOnce.done = true
	return nil
}

// CanSudo reports whether the login user can run `sudo -n` on this machine
// (sudo installed and, as root, the test user's sudoers rule in place).
func (s *Server) CanSudo() bool {
	if _, err := exec.LookPath("sudo"); err != nil {
		return false
	}
	if os.Geteuid() == 0 {
		_, err := os.Stat("/etc/sudoers.d/" + TestUser)
		return err == nil && s.User == TestUser
	}
	return exec.Command("sudo", "-n", "true").Run() == nil
}
