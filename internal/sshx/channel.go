package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Channel is one session channel that runs a command, driven by hand.
// Unlike ssh.Session it tells the command's exit as soon as the server
// reports it (Exited), while the output may still flow: OpenSSH reports
// the exit when its child exits, and a process the command left in the
// background may hold the output open for much longer.
//
// Read Stdout and Stderr concurrently until they end; the server stops
// sending when either is left unread.
type Channel struct {
	ch      ssh.Channel
	once    sync.Once
	release func()

	exited chan struct{} // closed when the exit status arrived
	ended  chan struct{} // closed when the channel is closed (requests end)
	status ExitStatus    // set before exited is closed
}

// ExitStatus is how a command ended, as the server reported it.
type ExitStatus struct {
	Code   int    // the exit status, when Signal is empty
	Signal string // the signal that killed it ("KILL"), if any
}

// NewChannel opens a session channel, dialling or redialling as needed
// (as NewSession does). Close releases it.
func (c *Client) NewChannel(ctx context.Context) (*Channel, error) {
	var sc *Channel
	_, release, err := c.openChannel(ctx, func(cl *ssh.Client) (io.Closer, error) {
		ch, reqs, err := cl.OpenChannel("session", nil)
		if err != nil {
			return nil, err
		}
		sc = newChannel(ch, reqs)
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	sc.release = release
	return sc, nil
}

func newChannel(ch ssh.Channel, reqs <-chan *ssh.Request) *Channel {
	c := &Channel{ch: ch, exited: make(chan struct{}), ended: make(chan struct{})}
	go c.serve(reqs)
	return c
}

// serve answers the server's requests on the channel until it closes.
func (c *Channel) serve(reqs <-chan *ssh.Request) {
	defer close(c.ended)
	got := false
	for req := range reqs {
		var st ExitStatus
		ok := false
		switch req.Type {
		case "exit-status":
			var p struct{ Status uint32 }
			if ssh.Unmarshal(req.Payload, &p) == nil {
				st, ok = ExitStatus{Code: int(p.Status)}, true
			}
		case "exit-signal":
			var p struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}
			if ssh.Unmarshal(req.Payload, &p) == nil {
				st, ok = ExitStatus{Signal: p.Signal}, true
			}
		}
		if req.WantReply {
			req.Reply(false, nil)
		}
		if ok && !got {
			got = true
			c.status = st
			close(c.exited)
		}
	}
}

// Start runs cmd in the channel.
func (c *Channel) Start(cmd string) error {
	ok, err := c.ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{cmd}))
	if err == nil && !ok {
		err = errors.New("the server refused to run the command")
	}
	if err != nil {
		return fmt.Errorf("ssh: start command: %w", err)
	}
	return nil
}

// Write writes to the command's standard input.
func (c *Channel) Write(p []byte) (int, error) { return c.ch.Write(p) }

// CloseWrite ends the command's standard input.
func (c *Channel) CloseWrite() error { return c.ch.CloseWrite() }

// Stdout is the command's standard output.
func (c *Channel) Stdout() io.Reader { return c.ch }

// Stderr is the command's standard error.
func (c *Channel) Stderr() io.Reader { return c.ch.Stderr() }

// Exited is closed once the server has reported the command's exit.
func (c *Channel) Exited() <-chan struct{} { return c.exited }

// Ended is closed once the channel is closed, by the server (after the
// command's output ended), by Close, or because the connection was lost.
func (c *Channel) Ended() <-chan struct{} { return c.ended }

// ExitStatus returns the command's exit, and false when the server has
// not reported it.
func (c *Channel) ExitStatus() (ExitStatus, bool) {
	select {
	case <-c.exited:
		return c.status, true
	default:
		return ExitStatus{}, false
	}
}

// Signal asks the server to deliver sig to the command.
func (c *Channel) Signal(sig ssh.Signal) error {
	_, err := c.ch.SendRequest("signal", false, ssh.Marshal(struct{ Signal string }{string(sig)}))
	return err
}

// Close closes the channel and releases its slot on the connection. It
// may be called more than once.
func (c *Channel) Close() error {
	err := c.ch.Close()
	c.once.Do(func() {
		if c.release != nil {
			c.release()
		}
	})
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}
