package sshx

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/sshdtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// testLog collects a Client's log lines; they are printed when a test fails.
type testLog struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newTestLog(t *testing.T) (*slog.Logger, *testLog) {
	l := &testLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client log:\n%s", l.String())
		}
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

// newHome makes a fake home directory with an empty ~/.ssh.
func newHome(t *testing.T) string {
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	return home
}

func genKey(t *testing.T) (ed25519.PrivateKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, s
}

// writeKey writes priv in OpenSSH format (encrypted when passphrase is
// set) and its .pub file.
func writeKey(t *testing.T, path string, priv ed25519.PrivateKey, passphrase string) {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test key")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test key", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, _ := ssh.NewPublicKey(priv.Public())
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		t.Fatal(err)
	}
}

// countingAgent is an in-process SSH agent that counts what it is asked.
type countingAgent struct {
	agent.Agent
	lists, signs atomic.Int32
	socket       string
}

func (a *countingAgent) List() ([]*agent.Key, error) {
	a.lists.Add(1)
	return a.Agent.List()
}

func (a *countingAgent) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	a.signs.Add(1)
	return a.Agent.Sign(key, data)
}

func (a *countingAgent) SignWithFlags(key ssh.PublicKey, data []byte, flags agent.SignatureFlags) (*ssh.Signature, error) {
	a.signs.Add(1)
	return a.Agent.(agent.ExtendedAgent).SignWithFlags(key, data, flags)
}

func (a *countingAgent) Extension(string, []byte) ([]byte, error) {
	return nil, agent.ErrExtensionUnsupported
}

func (a *countingAgent) calls() int { return int(a.lists.Load() + a.signs.Load()) }

// startAgent serves an agent holding keys on a unix socket.
func startAgent(t *testing.T, keys ...ed25519.PrivateKey) *countingAgent {
	t.Helper()
	kr := agent.NewKeyring()
	for _, k := range keys {
		if err := kr.Add(agent.AddedKey{PrivateKey: k, Comment: "agent test key"}); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", "sshx-agent")
	if err != nil {
		t.Fatal(err)
	}
	a := &countingAgent{Agent: kr, socket: filepath.Join(dir, "sock")}
	ln, err := net.Listen("unix", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ln.Close()
		os.RemoveAll(dir)
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = agent.ServeAgent(a, c)
			}()
		}
	}()
	return a
}

// baseConfig reaches srv with nothing from the machine: no ssh_config, no
// agent, no dial limit, known_hosts holding srv's key.
func baseConfig(t *testing.T, srv *sshdtest.Server, home string) Config {
	log, _ := newTestLog(t)
	return Config{
		Host:           srv.Addr,
		User:           srv.User,
		HomeDir:        home,
		SSHConfigFile:  "none",
		AgentSocket:    "none",
		KnownHostsFile: srv.KnownHostsFile,
		ConnectTimeout: 10 * time.Second,
		Limiter:        NewDialLimiter(0, 1),
		Logger:         log,
	}
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// run runs cmd on c and returns its trimmed stdout.
func run(t *testing.T, c *Client, cmd string) string {
	t.Helper()
	out, err := tryRun(ctxT(t), c, cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out
}

func tryRun(ctx context.Context, c *Client, cmd string) (string, error) {
	s, err := c.NewSession(ctx)
	if err != nil {
		return "", err
	}
	defer s.Close()
	var stderr bytes.Buffer
	s.Stderr = &stderr
	out, err := s.Output(cmd)
	if err != nil {
		return "", errors.Join(err, errors.New(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// fakeServer is an in-process SSH server for faults sshd cannot show: it
// accepts any client key, answers exec with "ok" (or never, for "hang"),
// and its connections can be frozen.
type fakeServer struct {
	addr  string
	ln    net.Listener
	cfg   *ssh.ServerConfig
	mu    sync.Mutex
	conns []*freezeConn
	// rejectSessions makes it refuse every session, like a server that
	// allows none (MaxSessions 0).
	rejectSessions atomic.Bool
}

func startFakeServer(t *testing.T, hostKeys ...ssh.Signer) *fakeServer {
	t.Helper()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil },
	}
	for _, k := range hostKeys {
		cfg.AddHostKey(k)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{addr: ln.Addr().String(), ln: ln, cfg: cfg}
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	go s.serve()
	return s
}

func (s *fakeServer) serve() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		fc := &freezeConn{Conn: nc, closed: make(chan struct{})}
		s.mu.Lock()
		s.conns = append(s.conns, fc)
		s.mu.Unlock()
		go s.handle(fc)
	}
}

// freezeAll makes every connection so far stop answering.
func (s *fakeServer) freezeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.frozen.Store(true)
	}
}

func (s *fakeServer) handle(nc net.Conn) {
	defer nc.Close()
	_, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs) // answers keepalives (with "failure")
	for nch := range chans {
		if nch.ChannelType() != "session" || s.rejectSessions.Load() {
			nch.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			return
		}
		go func() {
			for req := range creqs {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				var p struct{ Cmd string }
				ssh.Unmarshal(req.Payload, &p)
				req.Reply(true, nil)
				if p.Cmd == "hang" {
					continue
				}
				ch.Write([]byte("ok\n"))
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
				ch.Close()
			}
		}()
	}
}

// freezeConn stops reading and writing once frozen, like a peer that has
// vanished without closing the connection.
type freezeConn struct {
	net.Conn
	frozen atomic.Bool
	once   sync.Once
	closed chan struct{}
}

func (c *freezeConn) Read(p []byte) (int, error) {
	for {
		if c.frozen.Load() {
			<-c.closed
			return 0, net.ErrClosed
		}
		n, err := c.Conn.Read(p)
		if c.frozen.Load() {
			continue // swallowed
		}
		return n, err
	}
}

func (c *freezeConn) Write(p []byte) (int, error) {
	if c.frozen.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *freezeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func itoa(n int) string { return strconv.Itoa(n) }

func mustSigner(t *testing.T) ssh.Signer {
	_, s := genKey(t)
	return s
}
