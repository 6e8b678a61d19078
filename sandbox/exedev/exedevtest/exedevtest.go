// Package exedevtest is an in-process emulator of exe.dev, in the spirit of
// net/http/httptest: an SSH lobby on loopback that speaks exe.dev's
// commands, flags, JSON shapes, error texts and exit codes
// (reference/exedev.md §1 and §6), and an SSH endpoint for every VM it
// creates, presenting the lobby's host key as exe.dev's SSH proxy does.
//
// A VM is a private directory serving as the login user's home. Its
// commands run with /bin/sh as the emulator's own user, contained: each VM
// is one set of bubblewrap namespaces (PID with its own /proc, mount, UTS,
// IPC, and cgroup where allowed; the host's network) that every session
// enters, so the VM behaves like one machine. It sees /home/exedev (its
// home), its own /tmp, and the host's system directories and the
// toolchains on PATH read-only (internal/hostview), and nothing else of the
// host; its processes hold no capabilities, and die with the VM. Where
// that is not available (no bwrap, nsenter or setsid, they do not work, or
// not Linux), Start fails with a *NoContainmentError unless given
// WithNoIsolation: VM commands are then plain processes with HOME set to
// the VM's directory.
//
// Options inject the faults real users meet: slow readiness, quotas, taken
// names, missing images, errors on stderr, connections dropped mid-command
// or at a chosen step (WithDropExec, DropConnections), per-address
// connection-rate blocking, an unregistered key, legacy vm+ routing, the
// older JSON shapes and a changed host key (ChangeHostKey). Connections and
// Requests show what clients did, for assertions such as "no agent
// forwarding was requested" or "new connections stayed under the rate".
//
// Use NewServer in tests and Start elsewhere (a standalone emulator). The
// emulator needs a Unix system, and Linux to contain VMs; Start fails on
// others.
//
// Known differences from exe.dev, on purpose:
//   - VMs are reached at 127.0.0.1 on a port of their own (ssh_port), or on
//     one shared port routed by the vm+<name> username with
//     WithLegacyRouting; exe.dev uses <name>.exe.xyz port 22. `ls --json`
//     therefore also carries ssh_port and ssh_command.
//   - URLs point at <name>.exe.localhost; nothing serves them.
//   - The image is only a label: every VM runs the host's userland, as the
//     emulator's user (not exedev with sudo: run as a user, sudo does not
//     work in a VM). PATH is the emulator's. The network is the host's.
//   - `ssh <vm> <command>` in the lobby passes the VM command's exit status
//     through (other lobby commands exit 0 or 1), and waits while the VM is
//     not ready yet.
//   - Texts exe.dev's sources do not give are the emulator's own: the
//     lexer error, usage errors, tag errors, the rm text for several VMs and
//     rm's failed-array elements, the tag and restart outputs, help.
//   - Unimplemented real commands answer `"<cmd>" is not supported by the
//     exe.dev emulator`; the interactive REPL is not emulated.
//   - SFTP is served in-process (github.com/pkg/sftp) with paths mapped the
//     way the VM's mount namespace maps them.
package exedevtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox/exedev"
)

// Option configures a Server.
type Option func(*options)

type options struct {
	newDelay       time.Duration
	lobbyAddr      string
	readyDelay     time.Duration
	quota          int
	taken          []string
	missingImages  []string
	errorsOnStderr bool
	dropMidExec    int
	dropExec       func(script string) bool
	dropExecN      int
	loseStatus     func(script string) bool
	loseStatusN    int
	burstN         int
	burstWindow    time.Duration
	burstBlock     time.Duration
	unregistered   bool
	legacyRouting  bool
	oldJSON        bool
	diskCeiling    int
	noSandbox      bool
	noIsolation    bool
	logger         *slog.Logger
}

// WithReadyDelay makes a new VM's SSH endpoint unready for d after `new`
// (and after `restart`): TCP connections are accepted and then reset before
// the SSH banner, like a VM whose sshd is not up yet. `ls` lists the VM as
// running meanwhile, as exe.dev does.
func WithReadyDelay(d time.Duration) Option { return func(o *options) { o.readyDelay = d } }

// WithQuota allows at most n VMs alive at once; `new` and `cp` beyond fail
// with exe.dev's plan-limit message. n <= 0 means no limit.
func WithQuota(n int) Option { return func(o *options) { o.quota = n } }

// WithTakenNames marks names as taken by other users (exe.dev names are
// global): `new --name` with one fails with `VM name "<n>" is not
// available`.
func WithTakenNames(names ...string) Option {
	return func(o *options) { o.taken = append(o.taken, names...) }
}

// WithMissingImages makes `new --image <ref>` fail with exe.dev's
// `image "<ref>" not found or not accessible` for each given reference.
func WithMissingImages(refs ...string) Option {
	return func(o *options) { o.missingImages = append(o.missingImages, refs...) }
}

// WithErrorsOnStderr writes lobby errors to stderr instead of stdout (the
// newest server source writes them to stdout; some users saw stderr).
func WithErrorsOnStderr() Option { return func(o *options) { o.errorsOnStderr = true } }

// WithDropMidExec closes the whole TCP connection of the n-th exec session
// on any VM (1-based, counted across VMs) right after the command has
// written its first output, so the client sees a dead connection and no
// exit status.
func WithDropMidExec(n int) Option { return func(o *options) { o.dropMidExec = n } }

// WithDropExec closes the whole TCP connection of the first n exec
// sessions, on any VM, whose script match accepts, before the script
// runs: the client sees a dead connection and no exit status. The script
// is the command as sent or, for moat's exec wrapper (which reads its
// script base64-encoded from the first line of stdin), the decoded script,
// so a fault can target one step of a run (e.g. the sync-out's
// "format-patch").
func WithDropExec(n int, match func(script string) bool) Option {
	return func(o *options) { o.dropExec, o.dropExecN = match, n }
}

// WithLoseExitStatus is WithDropExec after the script has run to its end:
// the command did its work, but the client never learns it did (the
// answer was lost with the connection).
func WithLoseExitStatus(n int, match func(script string) bool) Option {
	return func(o *options) { o.loseStatus, o.loseStatusN = match, n }
}

// WithBurstLimit simulates exe.dev's per-address SYN drops: when more than n
// new TCP connections (lobby and VMs together) arrive within window, new
// connections during the next block are accepted but never get an SSH
// banner, so the client's handshake times out.
func WithBurstLimit(n int, window, block time.Duration) Option {
	return func(o *options) { o.burstN, o.burstWindow, o.burstBlock = n, window, block }
}

// WithUnregisteredKey makes the client key unknown to exe.dev: the lobby lets
// any key in, and every command prints `Please complete registration by
// running: ssh exe.dev` and exits 1.
func WithUnregisteredKey() Option { return func(o *options) { o.unregistered = true } }

// WithLegacyRouting makes `new` answer legacy vm+ routing: ssh_user
// "vm+<name>", ssh_dest "vm+<name>@127.0.0.1" and one VM port shared by
// all VMs that routes on the SSH username.
func WithLegacyRouting() Option { return func(o *options) { o.legacyRouting = true } }

// WithOldJSON makes `new --json` (and `cp --json`) answer the older box_name
// shape, and `rm --json` the older {"vm_name","status":"deleted"} shape.
func WithOldJSON() Option { return func(o *options) { o.oldJSON = true } }

// WithDiskCeiling sets the largest --disk in GiB (default 25).
func WithDiskCeiling(gib int) Option { return func(o *options) { o.diskCeiling = gib } }

// WithoutSandbox runs VM commands as plain processes even when the emulator
// could contain them (HOME is then the VM's directory on the host). For
// tests of the emulator's plain mode.
func WithoutSandbox() Option { return func(o *options) { o.noSandbox = true } }

// WithNoIsolation lets Start succeed when the emulator cannot contain its
// VMs here (no bubblewrap or nsenter, or they do not work): VM commands
// then run as plain host processes, as the emulator's user, and can read
// and write whatever that user can, see and signal its processes and read
// their environment. Containment says why. Without it, Start fails with a
// *NoContainmentError. This is the CLI's --no-isolation.
func WithNoIsolation() Option { return func(o *options) { o.noIsolation = true } }

// WithNewDelay makes `new` answer d after it has made the VM, like a slow
// lobby: a client that gives up meanwhile leaves a VM behind unless it
// deletes it.
func WithNewDelay(d time.Duration) Option { return func(o *options) { o.newDelay = d } }

// WithLobbyAddr makes the lobby listen on addr (e.g. "127.0.0.1:2222")
// instead of a random loopback port.
func WithLobbyAddr(addr string) Option { return func(o *options) { o.lobbyAddr = addr } }

// WithLogger sends the emulator's logs to l.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// LobbyCall is one command the lobby received.
type LobbyCall struct {
	User     string   // SSH username of the connection
	Command  string   // the command line as sent
	Args     []string // the command line split by the lexer (nil when it failed)
	Stdout   string   // what was written to stdout (capped at 64 KiB)
	Stderr   string   // what was written to stderr (capped at 64 KiB)
	ExitCode int
}

// Server is a running emulator.
type Server struct {
	opts options
	log  *slog.Logger

	dir            string // temp root, removed by Close
	keyFile        string
	knownHostsFile string
	homeDir        string     // a HOME for clients (empty .ssh)
	hostSigner     ssh.Signer // guarded by mu: ChangeHostKey replaces it
	clientPub      ssh.PublicKey
	sandbox        *sandboxInfo // nil: plain processes
	uncontained    error        // why sandbox is nil

	lobbyLn  net.Listener
	legacyLn net.Listener // shared VM port with legacy routing

	createMu sync.Mutex // serialises new/cp/restart

	mu           sync.Mutex
	closed       bool
	vms          map[string]*vm
	conns        map[net.Conn]*vm // open connections; nil value = lobby or held
	execCount    int
	dropsDone    int // WithDropExec faults injected
	lostDone     int // WithLoseExitStatus faults injected
	connLog      []Connection
	requests     map[string]int
	burstTimes   []time.Time
	blockedUntil time.Time
	transcript   []LobbyCall

	wg sync.WaitGroup
}

// NewServer starts an emulator for a test and closes it when the test ends.
// Where the emulator cannot contain its VMs, it runs their commands as
// plain processes (WithNoIsolation): a test's commands are its own. Tests
// that rely on containment check Sandboxed.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	// Internal errors (the lobby shows only a trace ID, as exe.dev does) go
	// to stderr, where a failing test's output shows them.
	opts = append([]Option{WithNoIsolation(), WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))}, opts...)
	s, err := Start(opts...)
	if err != nil {
		t.Fatalf("exedevtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("exedevtest: close: %v", err)
		}
	})
	return s
}

// Start starts an emulator. Close it when done. It fails with a
// *NoContainmentError (errors.Is ErrNoContainment) when it cannot contain
// its VMs here, unless WithNoIsolation or WithoutSandbox is given.
func Start(opts ...Option) (*Server, error) { return start(opts) }

func start(opts []Option) (_ *Server, err error) {
	o := options{diskCeiling: 25}
	for _, opt := range opts {
		opt(&o)
	}
	if err := platformSupported(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:     o,
		log:      o.logger,
		vms:      map[string]*vm{},
		conns:    map[net.Conn]*vm{},
		requests: map[string]int{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.dir, err = os.MkdirTemp("", "exedevtest-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	for _, d := range []string{"vms", "home/.ssh", "keys"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	s.homeDir = filepath.Join(s.dir, "home")
	if err := s.writeOwner(); err != nil {
		return nil, err
	}

	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if s.hostSigner, err = ssh.NewSignerFromKey(hostPriv); err != nil {
		return nil, err
	}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if s.clientPub, err = ssh.NewPublicKey(clientPub); err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "moat@exedevtest")
	if err != nil {
		return nil, err
	}
	s.keyFile = filepath.Join(s.dir, "keys", "id_ed25519")
	if err := os.WriteFile(s.keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.keyFile+".pub", ssh.MarshalAuthorizedKey(s.clientPub), 0o644); err != nil {
		return nil, err
	}

	if o.noSandbox {
		s.uncontained = &NoContainmentError{Reason: "containment turned off (WithoutSandbox)"}
	} else if s.sandbox, s.uncontained = sandboxOnce(s.log); s.sandbox == nil {
		if !o.noIsolation {
			return nil, s.uncontained
		}
		s.log.Info("exedevtest: VM commands run as plain processes; HOME is the VM's directory on the host", "why", s.uncontained)
	}

	lobbyAddr := o.lobbyAddr
	if lobbyAddr == "" {
		lobbyAddr = "127.0.0.1:0"
	}
	if s.lobbyLn, err = net.Listen("tcp", lobbyAddr); err != nil {
		return nil, err
	}
	s.knownHostsFile = filepath.Join(s.dir, "keys", "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(s.LobbyAddr())}, s.hostSigner.PublicKey())
	if err := os.WriteFile(s.knownHostsFile, []byte(line+"\n"), 0o600); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.acceptLoop(s.lobbyLn, nil, s.serveLobbyConn)

	if o.legacyRouting {
		if s.legacyLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		s.wg.Add(1)
		go s.acceptLoop(s.legacyLn, nil, func(c net.Conn) { s.serveVMConn(c, nil) })
	}
	s.log.Info("exedevtest: lobby listening", "addr", s.LobbyAddr(), "dir", s.dir)
	return s, nil
}

// Close stops the emulator: listeners and connections are closed, every
// VM's processes killed and the temporary directory removed.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var lns []net.Listener
	for _, ln := range []net.Listener{s.lobbyLn, s.legacyLn} {
		if ln != nil {
			lns = append(lns, ln)
		}
	}
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	vms := make([]*vm, 0, len(s.vms))
	for _, v := range s.vms {
		vms = append(vms, v)
	}
	s.vms = map[string]*vm{}
	s.mu.Unlock()

	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	// A VM moat kept holds the only copy of an agent's work: its files
	// stay, and with them the emulator's directory (its owner record),
	// for moat sandbox recover and gc to find.
	var errs []error
	leftFiles := false
	for _, v := range vms {
		if v.kept() {
			v.stop()
			leftFiles = true
			continue
		}
		errs = append(errs, v.destroy())
	}
	s.wg.Wait()
	if s.dir != "" && !leftFiles {
		errs = append(errs, removeAll(s.dir))
	}
	return errors.Join(errs...)
}

// ErrNoContainment is what Start's error matches (errors.Is) when the
// emulator cannot contain its VMs here and WithNoIsolation was not given.
var ErrNoContainment = errors.New("the exe.dev emulator cannot contain its VMs here")

// NoContainmentError says why the emulator cannot contain its VMs here and
// what to install.
type NoContainmentError struct {
	Reason string // what is missing or failed, e.g. "bwrap not found on PATH"
	Fix    string // how to get it, e.g. "install bubblewrap (apt-get install bubblewrap)"
}

func (e *NoContainmentError) Error() string {
	msg := "the exe.dev emulator cannot contain its VMs here: " + e.Reason
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

// Is makes errors.Is(err, ErrNoContainment) true.
func (e *NoContainmentError) Is(target error) bool { return target == ErrNoContainment }

var probes struct {
	sync.Mutex
	byPath map[string]*probeResult
}

type probeResult struct {
	once sync.Once
	si   *sandboxInfo
	err  error
}

// sandboxOnce probes bubblewrap once per process and PATH (which says
// where bwrap and nsenter are, and which toolchains VMs see): the
// containment every VM gets, or why there is none.
func sandboxOnce(log *slog.Logger) (*sandboxInfo, error) {
	path := vmPath()
	probes.Lock()
	if probes.byPath == nil {
		probes.byPath = map[string]*probeResult{}
	}
	p := probes.byPath[path]
	if p == nil {
		p = &probeResult{}
		probes.byPath[path] = p
	}
	probes.Unlock()
	p.once.Do(func() {
		dir, err := os.MkdirTemp("", "exedevtest-probe-")
		if err != nil {
			p.err = &NoContainmentError{Reason: "no temp dir for the bubblewrap probe: " + err.Error()}
			return
		}
		defer os.RemoveAll(dir)
		p.si, p.err = probeSandbox(dir, log)
		var nc *NoContainmentError
		if p.err != nil && !errors.As(p.err, &nc) {
			p.err = &NoContainmentError{Reason: "the bubblewrap probe failed: " + p.err.Error()}
		}
	})
	return p.si, p.err
}

// removeAll removes a tree, retrying briefly while killed processes are
// still letting go of it.
func removeAll(dir string) error {
	var err error
	for i := 0; i < 20; i++ {
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// Config points an exe.dev provider at the emulator.
func (s *Server) Config() exedev.Config {
	return exedev.Config{
		Lobby:          s.LobbyAddr(),
		IdentityFile:   s.keyFile,
		KnownHostsFile: s.knownHostsFile,
		SSH: sshx.Config{
			SSHConfigFile: "none",
			AgentSocket:   "none",
			HomeDir:       s.homeDir,
			// The emulator drops no connections (unless WithBurstLimit, whose
			// tests set their own limiter), so the provider's exe.dev-wide
			// dial limiter would only slow tests that share a process.
			Limiter: sshx.NewDialLimiter(0, 1),
		},
	}
}

// LobbyAddr is the lobby's address, "127.0.0.1:PORT".
func (s *Server) LobbyAddr() string { return s.lobbyLn.Addr().String() }

// LobbyPort is the lobby's TCP port.
func (s *Server) LobbyPort() int { return s.lobbyLn.Addr().(*net.TCPAddr).Port }

// HostKey is the host key the lobby and every VM present.
func (s *Server) HostKey() ssh.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostSigner.PublicKey()
}

// ChangeHostKey makes the lobby and every VM endpoint present a new host
// key from the next handshake on, as a man in the middle would (or exe.dev
// after a key rotation). Open connections are not touched; KnownHostsFile
// keeps the old key. It returns the new key.
func (s *Server) ChangeHostKey() (ssh.PublicKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.hostSigner = signer
	s.mu.Unlock()
	return signer.PublicKey(), nil
}

// Connection is one TCP connection the emulator accepted.
type Connection struct {
	Time time.Time
	VM   string // the VM whose port it came to; "" for the lobby (or the legacy shared port)
}

// Connections returns every TCP connection accepted so far (lobby and VMs,
// those the burst limit held included), in order: what a client's
// connection rate looks like from exe.dev's side.
func (s *Server) Connections() []Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Connection(nil), s.connLog...)
}

// Requests returns how many SSH requests of each type the emulator has
// received so far, global and per channel, and how many channels of each
// kind were opened ("channel:<type>"), whether it granted them or not:
// e.g. "exec", "env", "keepalive@openssh.com", "auth-agent-req@openssh.com"
// (agent forwarding), "channel:session".
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

func (s *Server) countRequest(kind string) {
	s.mu.Lock()
	s.requests[kind]++
	s.mu.Unlock()
}

// discardRequests refuses global requests, counting them.
func (s *Server) discardRequests(reqs <-chan *ssh.Request) {
	for r := range reqs {
		s.countRequest(r.Type)
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
}

// DropConnections closes every open connection to the named VM at once,
// like a network failure, and returns how many it closed.
func (s *Server) DropConnections(name string) int {
	s.mu.Lock()
	var drop []net.Conn
	for c, v := range s.conns {
		if v != nil && v.name == name {
			drop = append(drop, c)
		}
	}
	s.mu.Unlock()
	for _, c := range drop {
		c.Close()
	}
	if len(drop) > 0 {
		s.log.Info("exedevtest: dropped connections", "vm", name, "count", len(drop))
	}
	return len(drop)
}

// ClientKey is the public half of KeyFile, the key registered with the
// emulated account.
func (s *Server) ClientKey() ssh.PublicKey { return s.clientPub }

// KeyFile is the path of the registered client's private key (OpenSSH
// format, mode 0600).
func (s *Server) KeyFile() string { return s.keyFile }

// KnownHostsFile is a known_hosts file holding the lobby's key for
// [127.0.0.1]:PORT.
func (s *Server) KnownHostsFile() string { return s.knownHostsFile }

// Sandboxed reports whether VM commands run contained, inside bubblewrap
// namespaces.
func (s *Server) Sandboxed() bool { return s.sandbox != nil }

// CheckContainment tells whether Start would contain its VMs here: nil,
// or the *NoContainmentError Start would fail with. It probes as Start
// does (once per process and PATH). For diagnostics (moat doctor).
func CheckContainment() error {
	if err := platformSupported(); err != nil {
		return err
	}
	_, err := sandboxOnce(slog.New(slog.DiscardHandler))
	return err
}

// Containment is nil when VM commands run contained; otherwise a
// *NoContainmentError saying why they run as plain host processes.
func (s *Server) Containment() error { return s.uncontained }

// VMs returns the names of the VMs alive now, sorted.
func (s *Server) VMs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.vms))
	for n := range s.vms {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// VMHome returns the host directory that is the home directory of VM name
// (seen as /home/exedev inside the VM when sandboxed).
func (s *Server) VMHome(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vms[name]
	if !ok {
		return "", false
	}
	return v.home, true
}

// HostPath returns the host path of path as VM name sees it, when it is
// in the VM's home directory: its files stay there, on this computer, if
// the process ends without Close.
func (s *Server) HostPath(name, path string) (string, bool) {
	s.mu.Lock()
	v, ok := s.vms[name]
	s.mu.Unlock()
	if !ok {
		return "", false
	}
	rel, err := filepath.Rel(v.homeInside(), path)
	if err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	return filepath.Join(v.home, rel), true
}

// Dir is the emulator's directory on the host, removed by Close.
func (s *Server) Dir() string { return s.dir }

// VMAddr returns the host:port at which VM name accepts SSH.
func (s *Server) VMAddr(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vms[name]
	if !ok {
		return "", false
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(v.port)), true
}

// Instructions tells a person how to use the running emulator with the
// OpenSSH client (for a standalone emulator command).
func (s *Server) Instructions() string {
	ssh := fmt.Sprintf("ssh -i %s -o UserKnownHostsFile=%s -o IdentitiesOnly=yes -p %d 127.0.0.1",
		s.keyFile, s.knownHostsFile, s.LobbyPort())
	return "exe.dev emulator: lobby at " + s.LobbyAddr() + "\n" +
		"  try:  " + ssh + " help\n" +
		"        " + ssh + " new --json\n" +
		"  VMs present the lobby's host key; for a VM on port P use -p P (known_hosts has only the lobby's entry).\n"
}

// Transcript returns the lobby commands received so far, oldest first.
func (s *Server) Transcript() []LobbyCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LobbyCall(nil), s.transcript...)
}

// --- connections ---

// acceptLoop accepts connections on ln until it is closed. Each admitted
// connection is served by serve on its own goroutine.
func (s *Server) acceptLoop(ln net.Listener, v *vm, serve func(net.Conn)) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.logConnection(v)
		if !s.track(c, v) {
			c.Close()
			continue
		}
		if !s.admit(c) {
			s.wg.Add(1)
			go s.hold(c)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			serve(c)
		}()
	}
}

func (s *Server) logConnection(v *vm) {
	entry := Connection{Time: time.Now()}
	if v != nil {
		entry.VM = v.name
	}
	s.mu.Lock()
	s.connLog = append(s.connLog, entry)
	s.mu.Unlock()
}

func (s *Server) track(c net.Conn, v *vm) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (v != nil && v.isDeleted()) {
		return false
	}
	s.conns[c] = v
	return true
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// admit applies the burst limit: false means the connection arrived while
// the source address is blocked (or caused the block).
func (s *Server) admit(c net.Conn) bool {
	if s.opts.burstN <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.Before(s.blockedUntil) {
		return false
	}
	keep := s.burstTimes[:0]
	for _, t := range s.burstTimes {
		if now.Sub(t) < s.opts.burstWindow {
			keep = append(keep, t)
		}
	}
	s.burstTimes = append(keep, now)
	if len(s.burstTimes) > s.opts.burstN {
		s.blockedUntil = now.Add(s.opts.burstBlock)
		s.burstTimes = nil
		s.log.Info("exedevtest: connection burst, blocking new connections", "for", s.opts.burstBlock)
		return false
	}
	return true
}

// hold keeps a blocked connection open without a banner until the client
// gives up (or the server closes), like a dropped SYN seen from the client.
func (s *Server) hold(c net.Conn) {
	defer s.wg.Done()
	defer s.untrack(c)
	io.Copy(io.Discard, c)
}

// resetConn closes c with a TCP reset.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (s *Server) serverConfig(check func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error)) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: check,
		ServerVersion:     "SSH-2.0-exe.dev-emulator",
	}
	s.mu.Lock()
	cfg.AddHostKey(s.hostSigner)
	s.mu.Unlock()
	return cfg
}

func (s *Server) isClientKey(key ssh.PublicKey) bool {
	return string(key.Marshal()) == string(s.clientPub.Marshal())
}

func fingerprint(key ssh.PublicKey) string { return ssh.FingerprintSHA256(key) }

// handshake runs the SSH server handshake with a deadline.
func handshake(c net.Conn, cfg *ssh.ServerConfig) (*ssh.ServerConn, <-chan ssh.NewChannel, <-chan *ssh.Request, error) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	c.SetDeadline(time.Time{})
	return sc, chans, reqs, err
}
