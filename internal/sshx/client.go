package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// maxConns bounds the connections one Client keeps to its destination. More
// than one is opened only when the server refuses more sessions on those
// there are (OpenSSH: MaxSessions, 10 by default).
const maxConns = 8

// Client is a pool of SSH connections to one destination.
type Client struct {
	r   *resolved
	log *slog.Logger

	mu      sync.Mutex
	conns   []*conn
	dialing *dialCall
	changed chan struct{} // closed and replaced when the pool changes
	closed  bool
	nextID  int
	dials   int           // successful dials
	hostKey ssh.PublicKey // presented on the last successful handshake
}

// conn is one SSH connection of the pool.
type conn struct {
	id      int
	client  *ssh.Client
	open    int  // sessions open
	pending int  // session opens in flight
	limit   int  // sessions the server allows; 0 while unknown
	probing bool // a refusal was seen: no new opens until limit is learned
	peak    int  // most sessions open at once while probing
	refused bool // the last probe found the server refuses any session
	dead    bool
	done    chan struct{} // closed when the connection has ended
}

type dialCall struct {
	done chan struct{}
	err  error
}

// Stats describes a Client's pool, for tests and diagnostics.
type Stats struct {
	Conns    int // live connections
	Sessions int // open sessions
	Dials    int // connections made so far, redials included
}

// New resolves cfg (ssh_config, keys, known_hosts) without dialling.
func New(cfg Config) (*Client, error) {
	r, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{r: r, log: r.log, changed: make(chan struct{})}, nil
}

// Addr is the resolved host:port that is dialled.
func (c *Client) Addr() string { return c.r.addr }

// User is the resolved login name.
func (c *Client) User() string { return c.r.user }

// HostKey is the host key the server presented on the latest successful
// connection, or nil before one. (exe.dev pins every VM to the lobby's key.)
func (c *Client) HostKey() ssh.PublicKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hostKey
}

// Stats reports the pool's state.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Dials: c.dials}
	for _, cn := range c.conns {
		if !cn.dead {
			s.Conns++
			s.Sessions += cn.open
		}
	}
	return s
}

// notifyLocked wakes everyone waiting for the pool to change.
func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Connect dials now if no connection is up.
func (c *Client) Connect(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		for _, cn := range c.conns {
			if !cn.dead {
				c.mu.Unlock()
				return nil
			}
		}
		call, wait := c.startDialLocked(ctx)
		c.mu.Unlock()
		if err := wait(ctx, call); err != nil {
			if ctx.Err() == nil && isOtherCallersCancel(err) {
				continue
			}
			return err
		}
	}
}

// startDialLocked joins the dial in flight or starts one. The returned wait
// function blocks until that dial ends.
func (c *Client) startDialLocked(ctx context.Context) (*dialCall, func(context.Context, *dialCall) error) {
	wait := func(ctx context.Context, call *dialCall) error {
		select {
		case <-call.done:
			return call.err
		case <-ctx.Done():
			return fmt.Errorf("ssh %s: %w", c.r.dest, ctx.Err())
		}
	}
	if c.dialing != nil {
		return c.dialing, wait
	}
	call := &dialCall{done: make(chan struct{})}
	c.dialing = call
	live := 0
	for _, cn := range c.conns {
		if !cn.dead {
			live++
		}
	}
	redial := c.dials > 0 && live == 0
	go func() {
		// The dial runs on its own goroutine so that a caller that gives up
		// does not leave the others waiting; it still ends with ctx.
		cl, hostKey, err := c.dial(ctx, redial, live)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.dialing = nil
		call.err = err
		if err == nil {
			if c.closed {
				cl.Close()
				call.err = ErrClosed
			} else {
				c.hostKey = hostKey
				c.addConnLocked(cl)
			}
		}
		close(call.done)
		c.notifyLocked()
	}()
	return call, wait
}

// otherCallerError marks a dial that ended because the context of the caller
// that started it ended; others waiting for it should try again.
type otherCallerError struct{ error }

func (e otherCallerError) Unwrap() error { return e.error }

func isOtherCallersCancel(err error) bool {
	var o otherCallerError
	return errors.As(err, &o)
}

func (c *Client) addConnLocked(cl *ssh.Client) {
	c.nextID++
	c.dials++
	cn := &conn{id: c.nextID, client: cl, done: make(chan struct{})}
	c.conns = append(c.conns, cn)
	go func() {
		err := cl.Wait()
		c.markDead(cn, err)
		close(cn.done)
	}()
	if c.r.keepalive > 0 {
		go c.keepalive(cn, c.r.keepalive)
	}
}

// markDead takes cn out of the pool and closes it.
func (c *Client) markDead(cn *conn, why error) {
	c.mu.Lock()
	if cn.dead {
		c.mu.Unlock()
		return
	}
	cn.dead = true
	for i, x := range c.conns {
		if x == cn {
			c.conns = append(c.conns[:i:i], c.conns[i+1:]...)
			break
		}
	}
	closed := c.closed
	c.notifyLocked()
	c.mu.Unlock()
	if !closed {
		c.log.Debug("ssh: connection lost", "dest", c.r.dest, "conn", cn.id, "err", why)
	}
	cn.client.Close()
}

// keepalive sends keepalive@openssh.com every interval and closes the
// connection when three intervals pass without an answer.
func (c *Client) keepalive(cn *conn, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var reply chan error
	missed := 0
	for {
		select {
		case <-cn.done:
			return
		case err := <-reply:
			reply = nil
			if err != nil {
				c.markDead(cn, err)
				return
			}
			missed = 0
		case <-t.C:
			if reply != nil {
				missed++
				if missed >= 3 {
					c.log.Debug("ssh: no answer to keepalives; closing the connection",
						"dest", c.r.dest, "conn", cn.id, "silence", time.Duration(missed)*every)
					c.markDead(cn, fmt.Errorf("no answer to %d keepalives", missed))
					return
				}
				continue
			}
			reply = make(chan error, 1)
			go func(ch chan error) {
				_, _, err := cn.client.SendRequest("keepalive@openssh.com", true, nil)
				ch <- err
			}(reply)
		}
	}
}

// NewSession opens a session, dialling or redialling as needed.
func (c *Client) NewSession(ctx context.Context) (*Session, error) {
	x, release, err := c.openChannel(ctx, func(cl *ssh.Client) (io.Closer, error) { return cl.NewSession() })
	if err != nil {
		return nil, err
	}
	return &Session{Session: x.(*ssh.Session), release: release}, nil
}

// openChannel opens a session channel with open on a connection that
// has room for it, dialling or redialling as needed. release gives its
// slot back.
func (c *Client) openChannel(ctx context.Context, open func(*ssh.Client) (io.Closer, error)) (x io.Closer, release func(), err error) {
	redialled := false
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("ssh %s: %w", c.r.dest, err)
		}
		if attempt > 4*maxConns {
			return nil, nil, fmt.Errorf("ssh %s: cannot open a session: the server keeps refusing", c.r.dest)
		}
		cn, err := c.acquire(ctx)
		if err != nil {
			return nil, nil, err
		}
		x, err := c.openOn(ctx, cn, open)
		if err == nil {
			return x, func() { c.release(cn) }, nil
		}
		var oce *ssh.OpenChannelError
		switch {
		case errors.As(err, &oce):
			if full := c.learnLimit(ctx, cn); !full {
				return nil, nil, fmt.Errorf("ssh %s: the server refused to open a session: %w", c.r.dest, err)
			}
		case ctx.Err() != nil:
			return nil, nil, fmt.Errorf("ssh %s: %w", c.r.dest, ctx.Err())
		default:
			// The connection turned out dead: redial once.
			c.markDead(cn, err)
			if redialled {
				return nil, nil, &ConnectError{Dest: c.r.dest, Err: fmt.Errorf("connection lost while opening a session: %w", err)}
			}
			redialled = true
			c.log.Debug("ssh: connection dead when opening a session; redialling", "dest", c.r.dest, "conn", cn.id, "err", err)
		}
	}
}

// acquire reserves a session slot on a live connection, dialling when
// none has room.
func (c *Client) acquire(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		live, probing := 0, false
		for _, cn := range c.conns {
			if cn.dead {
				continue
			}
			live++
			if cn.probing {
				probing = true
				continue
			}
			if cn.limit == 0 || cn.open+cn.pending < cn.limit {
				cn.pending++
				c.mu.Unlock()
				return cn, nil
			}
		}
		changed := c.changed
		if probing || (live >= maxConns && c.dialing == nil) {
			// Wait for a slot, or for a refused connection to learn its limit.
			c.mu.Unlock()
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("ssh %s: waiting for a free session: %w", c.r.dest, ctx.Err())
			}
		}
		if live > 0 && c.dialing == nil {
			c.log.Debug("ssh: every connection is at the server's session limit; dialling another",
				"dest", c.r.dest, "conns", live)
		}
		call, wait := c.startDialLocked(ctx)
		c.mu.Unlock()
		err := wait(ctx, call)
		if err == nil || (ctx.Err() == nil && isOtherCallersCancel(err)) {
			continue
		}
		if ctx.Err() == nil && errors.Is(err, ErrClosed) {
			return nil, ErrClosed
		}
		// A slot may have freed while the extra dial failed.
		if live > 0 && ctx.Err() == nil {
			c.log.Debug("ssh: extra connection failed; waiting for a slot", "dest", c.r.dest, "err", err)
			select {
			case <-changed:
				continue
			default:
			}
		}
		return nil, err
	}
}

// openOn opens a session channel with open on cn, whose slot acquire
// reserved.
func (c *Client) openOn(ctx context.Context, cn *conn, open func(*ssh.Client) (io.Closer, error)) (io.Closer, error) {
	type result struct {
		s   io.Closer
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := open(cn.client)
		ch <- result{s, err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		// Let the open finish in the background and give its slot back.
		go func() {
			res := <-ch
			c.mu.Lock()
			cn.pending--
			if res.err == nil {
				cn.open++
			}
			c.settleLocked(cn)
			c.notifyLocked()
			c.mu.Unlock()
			if res.err == nil {
				res.s.Close()
				c.release(cn)
			}
		}()
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cn.pending--
	if res.err != nil {
		c.settleLocked(cn)
		c.notifyLocked()
		return nil, res.err
	}
	cn.open++
	if cn.probing && cn.open > cn.peak {
		cn.peak = cn.open
	}
	if cn.limit > 0 && cn.open > cn.limit {
		cn.limit = cn.open
	}
	c.settleLocked(cn)
	return res.s, nil
}

// learnLimit handles a refused session open on cn: the server allows no
// more sessions on it. No new opens go to cn until those in flight settle;
// then the most sessions seen open at once is cn's limit. It reports false
// when the server refused with no session open: no limit to work around.
func (c *Client) learnLimit(ctx context.Context, cn *conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !cn.probing {
		cn.probing = true
		cn.peak = cn.open
	}
	c.settleLocked(cn)
	for cn.probing && !cn.dead && ctx.Err() == nil {
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
		}
		c.mu.Lock()
	}
	if cn.dead || ctx.Err() != nil {
		return true // the caller tries again, or returns ctx's error
	}
	return !cn.refused
}

// settleLocked ends cn's probe once no session open is in flight.
func (c *Client) settleLocked(cn *conn) {
	if !cn.probing || cn.pending > 0 {
		return
	}
	cn.probing = false
	cn.refused = cn.peak == 0
	if cn.limit == 0 || cn.peak < cn.limit {
		c.log.Debug("ssh: server refused a session; connection is full",
			"dest", c.r.dest, "conn", cn.id, "sessions", cn.peak)
	}
	cn.limit = cn.peak
	c.notifyLocked()
}

// release frees a session slot on cn.
func (c *Client) release(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn.open--
	c.notifyLocked()
}

// Close closes every connection. Sessions in flight fail.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := c.conns
	c.conns = nil
	for _, cn := range conns {
		cn.dead = true
	}
	c.notifyLocked()
	c.mu.Unlock()
	for _, cn := range conns {
		cn.client.Close()
	}
	return nil
}

// dial makes one connection: rate limit, TCP, handshake, authentication.
func (c *Client) dial(ctx context.Context, redial bool, live int) (*ssh.Client, ssh.PublicKey, error) {
	r := c.r
	if err := r.limiter.Wait(ctx); err != nil {
		return nil, nil, otherCallerError{fmt.Errorf("ssh %s: waiting to connect: %w", r.dest, err)}
	}
	switch {
	case redial:
		c.log.Debug("ssh: redialling", "dest", r.dest)
	case live > 0:
		c.log.Debug("ssh: dialling an extra connection", "dest", r.dest, "conns", live)
	default:
		c.log.Debug("ssh: dialling", "dest", r.dest)
	}
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, r.connectTimeout)
	defer cancel()
	timedOut := func() error {
		if ctx.Err() != nil {
			return otherCallerError{fmt.Errorf("ssh %s: %w", r.dest, ctx.Err())}
		}
		return &ConnectError{Dest: r.dest, Err: fmt.Errorf("no answer within %s: %w", r.connectTimeout, os.ErrDeadlineExceeded)}
	}

	keys, err := r.authKeys(dctx)
	if err != nil {
		return nil, nil, err
	}
	defer keys.close()
	hostKeyCB, algos, err := r.hostKeyCheck()
	if err != nil {
		return nil, nil, err
	}
	var (
		hostKeyMu  sync.Mutex
		hostKeyErr error
		presented  ssh.PublicKey
	)
	cfg := &ssh.ClientConfig{
		User: r.user,
		Auth: []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			return keys.signers, nil
		})},
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			err := hostKeyCB(hostname, remote, key)
			hostKeyMu.Lock()
			hostKeyErr, presented = err, key
			hostKeyMu.Unlock()
			return err
		},
		HostKeyAlgorithms: algos,
	}

	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", r.addr)
	if err != nil {
		if dctx.Err() != nil {
			return nil, nil, timedOut()
		}
		return nil, nil, &ConnectError{Dest: r.dest, Err: err}
	}
	stop := context.AfterFunc(dctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, r.addr, cfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, nil, timedOut()
	}
	if err != nil {
		nc.Close()
		hostKeyMu.Lock()
		hkErr := hostKeyErr
		hostKeyMu.Unlock()
		return nil, nil, c.handshakeError(err, hkErr, keys)
	}
	c.log.Debug("ssh: connected", "dest", r.dest, "elapsed", time.Since(start).Round(time.Millisecond))
	hostKeyMu.Lock()
	key := presented
	hostKeyMu.Unlock()
	return ssh.NewClient(sc, chans, reqs), key, nil
}

func (c *Client) handshakeError(err, hostKeyErr error, keys *authKeys) error {
	r := c.r
	if hostKeyErr != nil {
		if r.hostKeyCB != nil { // the caller's own check
			return &HostKeyRejectedError{Dest: r.dest, Err: hostKeyErr}
		}
		return hostKeyErr
	}
	var ane *ssh.AlgorithmNegotiationError
	if errors.As(err, &ane) && ane.What == "host key" {
		return r.hostKeyTypeError(ane)
	}
	msg := err.Error()
	if strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "Too many authentication failures") ||
		strings.Contains(msg, "no supported methods remain") {
		return &AuthError{User: r.user, Host: r.addr, Offered: keys.offered, Notes: keys.notes, Err: err}
	}
	var netErr net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &ConnectError{Dest: r.dest, Err: fmt.Errorf("the server closed the connection during the handshake: %w", err)}
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return &ConnectError{Dest: r.dest, Err: fmt.Errorf("the connection was reset during the handshake: %w", err)}
	case errors.As(err, &netErr):
		return &ConnectError{Dest: r.dest, Err: err}
	}
	return fmt.Errorf("ssh %s: %w", r.dest, err)
}

// Session is one SSH session; Close releases its slot on the connection.
// Wait, Run, Output and CombinedOutput close the session when the command
// has ended, so Close after them is optional (and harmless).
type Session struct {
	*ssh.Session
	once    sync.Once
	release func()
}

func (s *Session) done() {
	s.once.Do(func() {
		if s.release != nil {
			s.release()
		}
	})
}

// Close closes the session and releases its slot. It may be called more
// than once, and after Wait.
func (s *Session) Close() error {
	err := s.Session.Close()
	s.done()
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}

// Wait waits for the command to end (see ssh.Session.Wait), then closes the
// session.
func (s *Session) Wait() error {
	err := s.Session.Wait()
	s.Close()
	return err
}

// Run runs cmd (see ssh.Session.Run), then closes the session.
func (s *Session) Run(cmd string) error {
	err := s.Session.Run(cmd)
	s.Close()
	return err
}

// Output runs cmd and returns its standard output (see
// ssh.Session.Output), then closes the session.
func (s *Session) Output(cmd string) ([]byte, error) {
	out, err := s.Session.Output(cmd)
	s.Close()
	return out, err
}

// CombinedOutput runs cmd and returns its standard output and error (see
// ssh.Session.CombinedOutput), then closes the session.
func (s *Session) CombinedOutput(cmd string) ([]byte, error) {
	out, err := s.Session.CombinedOutput(cmd)
	s.Close()
	return out, err
}
