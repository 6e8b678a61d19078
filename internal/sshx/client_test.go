package sshx

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/sshdtest"
)

// Sessions share one connection.
func TestOneConnectionManySessions(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t, sshdtest.Options{})
	cfg := baseConfig(t, srv, newHome(t))
	cfg.IdentityFile = srv.KeyFile
	c := newClient(t, cfg)
	if err := c.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if got := run(t, c, fmt.Sprintf("echo %d", i)); got != fmt.Sprint(i) {
			t.Fatalf("got %q", got)
		}
	}
	if st := c.Stats(); st.Dials != 1 || st.Conns != 1 || st.Sessions != 0 {
		t.Fatalf("stats %+v; want one dial, one connection, no session open", st)
	}
	if n, err := srv.Connections(); err == nil && n != 1 {
		t.Fatalf("sshd serves %d connections, want 1", n)
	}
}

// More concurrent sessions than OpenSSH allows on one connection
// (MaxSessions 10) all run, on a few connections.
func TestMoreSessionsThanMaxSessions(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t, sshdtest.Options{})
	cfg := baseConfig(t, srv, newHome(t))
	cfg.IdentityFile = srv.KeyFile
	log, logs := newTestLog(t)
	cfg.Logger = log
	c := newClient(t, cfg)
	const n = 25
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := tryRun(ctxT(t), c, fmt.Sprintf("sleep 0.5; echo %d", i))
			if err == nil && out != fmt.Sprint(i) {
				err = fmt.Errorf("session %d printed %q", i, out)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st := c.Stats()
	t.Logf("%d sessions in %v over %d connections", n, time.Since(start).Round(time.Millisecond), st.Dials)
	if st.Dials < 3 || st.Dials >= n {
		t.Fatalf("%d connections for %d sessions; want at least 3 (10 per connection) and fewer than %d", st.Dials, n, n)
	}
	if st.Sessions != 0 {
		t.Errorf("%d sessions still counted open", st.Sessions)
	}
	if !strings.Contains(logs.String(), "dialling an extra connection") {
		t.Error("no debug line about the extra connections")
	}
	// Each connection learned its limit: another wave needs no new dial.
	before := st.Dials
	wg = sync.WaitGroup{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := tryRun(ctxT(t), c, "sleep 0.2"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if d := c.Stats().Dials; d != before {
		t.Errorf("second wave dialled %d more connections", d-before)
	}
}

// A connection killed on the server is redialled on the next session.
func TestRedialAfterConnectionKilled(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t, sshdtest.Options{})
	cfg := baseConfig(t, srv, newHome(t))
	cfg.IdentityFile = srv.KeyFile
	cfg.KeepaliveInterval = -1 // the dead connection is found when used
	log, logs := newTestLog(t)
	cfg.Logger = log
	c := newClient(t, cfg)
	run(t, c, "true")

	// A session running when the connection dies fails.
	s, err := c.NewSession(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("sleep 10"); err != nil {
		t.Fatal(err)
	}
	if err := srv.KillConnections(); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err == nil {
		t.Fatal("a session on a killed connection ended without error")
	}
	if got := run(t, c, "echo back"); got != "back" {
		t.Fatalf("got %q", got)
	}
	if st := c.Stats(); st.Dials != 2 || st.Conns != 1 {
		t.Fatalf("stats %+v; want 2 dials, 1 connection", st)
	}
	if !strings.Contains(logs.String(), "redialling") {
		t.Error("no debug line about the redial")
	}
}

// When the server goes away the error is a connect error; when it comes
// back (same port), the client reconnects.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t, sshdtest.Options{})
	cfg := baseConfig(t, srv, newHome(t))
	cfg.IdentityFile = srv.KeyFile
	c := newClient(t, cfg)
	run(t, c, "true")
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.KillConnections(); err != nil {
		t.Fatal(err)
	}
	// The dead connection is not detected yet: the session open finds it
	// dead, the redial is refused.
	_, err := c.NewSession(ctxT(t))
	var ce *ConnectError
	if !errors.As(err, &ce) || !IsConnectError(err) {
		t.Fatalf("got %v, want a connect error", err)
	}
	wantContains(t, err.Error(), "ssh "+srv.User+"@"+srv.Addr+": cannot connect", "refused")
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := run(t, c, "echo up"); got != "up" {
		t.Fatalf("got %q", got)
	}
}

// Close after Wait, Close twice, and Output all release the slot once.
func TestSessionClose(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t, sshdtest.Options{MaxSessions: 2})
	cfg := baseConfig(t, srv, newHome(t))
	cfg.IdentityFile = srv.KeyFile
	c := newClient(t, cfg)
	ctx := ctxT(t)
	for range 5 { // more than MaxSessions: a leaked slot would show
		s, err := c.NewSession(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start("true"); err != nil {
			t.Fatal(err)
		}
		if err := s.Wait(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close after Wait: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if n := c.Stats().Sessions; n != 0 {
			t.Fatalf("%d sessions counted open", n)
		}
	}
	for range 5 {
		s, err := c.NewSession(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.Close() // never started
	}
	if st := c.Stats(); st.Dials != 1 || st.Sessions != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Two open sessions fill the connection; a third needs a second one.
	s1, _ := c.NewSession(ctx)
	s2, _ := c.NewSession(ctx)
	s3, err := c.NewSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Dials != 2 || st.Sessions != 3 {
		t.Fatalf("stats %+v; want 2 dials, 3 sessions", st)
	}
	s1.Close()
	s2.Close()
	s3.Close()
}

// Keepalives close a connection whose server stopped answering; the next
// session redials.
func TestKeepaliveClosesDeadConnection(t *testing.T) {
	t.Parallel()
	srv := startFakeServer(t, mustSigner(t))
	home := newHome(t)
	clientPriv, _ := genKey(t)
	writeKey(t, home+"/.ssh/id_ed25519", clientPriv, "")
	log, logs := newTestLog(t)
	// Three missed ticks drop a connection: leave a slow (loaded) healthy
	// reply room.
	const every = 250 * time.Millisecond
	c := newClient(t, Config{Host: srv.addr, User: "u", HomeDir: home, SSHConfigFile: "none", AgentSocket: "none",
		KnownHostsFile: home + "/kh", Limiter: NewDialLimiter(0, 1), Logger: log, KeepaliveInterval: every})
	s, err := c.NewSession(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("hang"); err != nil {
		t.Fatal(err)
	}
	// Answered keepalives keep the connection.
	time.Sleep(5 * every)
	if st := c.Stats(); st.Conns != 1 {
		t.Fatalf("a healthy connection was dropped: %+v", st)
	}
	srv.freezeAll()
	frozen := time.Now()
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	select {
	case err := <-waited:
		if err == nil {
			t.Fatal("session on the dead connection ended without error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the dead connection was not closed within 5s")
	}
	if d := time.Since(frozen); d < 2*every {
		t.Fatalf("closed after %v, before three keepalives could be missed", d)
	}
	if st := c.Stats(); st.Conns != 0 {
		t.Fatalf("stats %+v after keepalive timeout", st)
	}
	wantContains(t, logs.String(), "no answer to keepalives")
	if got := run(t, c, "again"); got != "ok" {
		t.Fatalf("got %q", got)
	}
	if st := c.Stats(); st.Dials != 2 {
		t.Fatalf("stats %+v; want a redial", st)
	}
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	clientPriv, _ := genKey(t)
	writeKey(t, home+"/.ssh/id_ed25519", clientPriv, "")
	cfgFor := func(addr string, timeout time.Duration) Config {
		log, _ := newTestLog(t)
		return Config{Host: addr, User: "u", HomeDir: home, SSHConfigFile: "none", AgentSocket: "none",
			KnownHostsFile: home + "/kh", Limiter: NewDialLimiter(0, 1), ConnectTimeout: timeout, Logger: log}
	}
	// A listener that accepts and says nothing; one that hangs up at once.
	silent := listen(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	// One that hangs up once it has read the client's version line (EOF),
	// and one that resets the connection.
	hangup := listen(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		c.Close()
	})
	reset := listen(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	refused := listen(t, nil)
	refused.Close()

	// Cases that answer get a long timeout, so load cannot turn them into
	// "no answer"; dns keeps a short one so an offline resolver stays fast.
	const short, long = 300 * time.Millisecond, 10 * time.Second
	for _, tc := range []struct {
		name, addr string
		timeout    time.Duration
		want       string
	}{
		{"refused", refused.Addr().String(), long, "connection refused"},
		{"timeout", silent.Addr().String(), short, "no answer within 300ms"},
		{"eof", hangup.Addr().String(), long, "closed the connection during the handshake"},
		{"reset", reset.Addr().String(), long, "reset during the handshake"},
		{"dns", "nonexistent.invalid:22", short, "nonexistent.invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, cfgFor(tc.addr, tc.timeout))
			start := time.Now()
			_, err := c.NewSession(ctxT(t))
			var ce *ConnectError
			if !errors.As(err, &ce) || !IsConnectError(err) {
				t.Fatalf("got %v (%T), want a connect error", err, err)
			}
			wantContains(t, err.Error(), "ssh u@", ": cannot connect: ", tc.want)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}

	t.Run("cancel during handshake", func(t *testing.T) {
		c := newClient(t, cfgFor(silent.Addr().String(), 10*time.Second))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.NewSession(ctx)
		if !errors.Is(err, context.Canceled) || IsConnectError(err) {
			t.Fatalf("got %v; want context.Canceled, not a connect error", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("cancel took %v", d)
		}
	})

	t.Run("limiter is used", func(t *testing.T) {
		cfg := cfgFor(silent.Addr().String(), time.Second)
		cfg.Limiter = NewDialLimiter(time.Hour, 1)
		cfg.Limiter.Wait(context.Background()) // spend the only token
		c := newClient(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		_, err := c.NewSession(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || IsConnectError(err) {
			t.Fatalf("got %v; want the caller's deadline while waiting for the limiter", err)
		}
	})
}

func listen(t *testing.T, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if handle != nil {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					handle(c)
				}()
			}
		}()
	}
	return ln
}

func TestIsConnectError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{context.Canceled, false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{&ConnectError{Dest: "u@h:22", Err: io.EOF}, true},
		{fmt.Errorf("wrapped: %w", &ConnectError{Dest: "u@h:22", Err: io.EOF}), true},
		{&net.DNSError{Err: "no such host", Name: "x"}, true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{io.EOF, true},
		{&AuthError{User: "u", Host: "h:22"}, false},
		{&HostKeyChangedError{}, false},
		{&KeyError{}, false},
	} {
		if got := IsConnectError(tc.err); got != tc.want {
			t.Errorf("IsConnectError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestClosedClient(t *testing.T) {
	c, err := New(Config{Host: "127.0.0.1:1", HomeDir: t.TempDir(), SSHConfigFile: "none", AgentSocket: "none"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.NewSession(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// A server that refuses every session gives an error, not an endless hunt
// for a connection with room.
func TestServerRefusesAllSessions(t *testing.T) {
	t.Parallel()
	srv := startFakeServer(t, mustSigner(t))
	srv.rejectSessions.Store(true)
	home := newHome(t)
	clientPriv, _ := genKey(t)
	writeKey(t, home+"/.ssh/id_ed25519", clientPriv, "")
	log, _ := newTestLog(t)
	c := newClient(t, Config{Host: srv.addr, User: "u", HomeDir: home, SSHConfigFile: "none", AgentSocket: "none",
		KnownHostsFile: home + "/kh", Limiter: NewDialLimiter(0, 1), Logger: log})
	for range 2 {
		_, err := c.NewSession(ctxT(t))
		if err == nil || !strings.Contains(err.Error(), "the server refused to open a session") {
			t.Fatalf("got %v", err)
		}
	}
	if d := c.Stats().Dials; d != 1 {
		t.Fatalf("%d dials; want 1", d)
	}
	srv.rejectSessions.Store(false)
	if got := run(t, c, "x"); got != "ok" {
		t.Fatalf("got %q", got)
	}
}
