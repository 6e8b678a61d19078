package exedevtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// signer loads the emulator's client key from its file, as a client would.
func signer(t testing.TB, s *Server) ssh.Signer {
	t.Helper()
	b, err := os.ReadFile(s.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	sg, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

// dial connects to addr as user with the client key, pinning the lobby's
// host key, with a deadline on the whole handshake.
func dial(s *Server, sg ssh.Signer, addr, user string, timeout time.Duration) (*ssh.Client, error) {
	cfg := &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(sg)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey()),
		Timeout:         timeout,
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	sc, chans, reqs, err := ssh.NewClientConn(c, addr, cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

func mustDial(t testing.TB, s *Server, addr, user string) *ssh.Client {
	t.Helper()
	c, err := dial(s, signer(t, s), addr, user, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// result is what one command produced.
type result struct {
	stdout, stderr string
	code           int
	signal         string
	err            error // transport error (not an exit status)
}

// run runs cmd in a new session on c.
func run(c *ssh.Client, cmd string, stdin []byte, env ...string) result {
	sess, err := c.NewSession()
	if err != nil {
		return result{err: err}
	}
	defer sess.Close()
	for i := 0; i+1 < len(env); i += 2 {
		if err := sess.Setenv(env[i], env[i+1]); err != nil {
			return result{err: err}
		}
	}
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errb
	if stdin != nil {
		sess.Stdin = bytes.NewReader(stdin)
	}
	err = sess.Run(cmd)
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *ssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code, r.signal = ee.ExitStatus(), ee.Signal()
	default:
		r.err = err
	}
	return r
}

// lobbyRun runs a lobby command on a fresh session of c and fails the test
// on transport errors.
func lobbyRun(t testing.TB, c *ssh.Client, cmd string) result {
	t.Helper()
	r := run(c, cmd, nil)
	if r.err != nil {
		t.Fatalf("lobby %q: %v", cmd, r.err)
	}
	return r
}

type newAnswer struct {
	VMName  string   `json:"vm_name"`
	SSHHost string   `json:"ssh_host"`
	SSHUser string   `json:"ssh_user"`
	SSHPort int      `json:"ssh_port"`
	SSHDest string   `json:"ssh_dest"`
	Tags    []string `json:"tags"`
}

func (a newAnswer) addr() string { return net.JoinHostPort(a.SSHHost, strconv.Itoa(a.SSHPort)) }

// newVM creates a VM through the lobby and returns the answer.
func newVM(t testing.TB, lobby *ssh.Client, args string) newAnswer {
	t.Helper()
	r := lobbyRun(t, lobby, "new --json --no-email "+args)
	if r.code != 0 {
		t.Fatalf("new: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	var a newAnswer
	if err := json.Unmarshal([]byte(r.stdout), &a); err != nil {
		t.Fatalf("new: %v: %q", err, r.stdout)
	}
	return a
}

func generateTestKey(t testing.TB) (ssh.PublicKey, ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := ssh.NewPublicKey(pub)
	return sp, sg, priv
}
