package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/moatdev/moat/internal/shell"
)

// ErrClosed is returned by a Client used after Close.
var ErrClosed = errors.New("sshx: client closed")

// ConnectError is a failure to reach the server: DNS, refused, reset, timed
// out, unreachable, or the connection closed during the handshake. Such
// failures are worth retrying.
type ConnectError struct {
	Dest string // user@host:port
	Err  error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("ssh %s: cannot connect: %v", e.Dest, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// AuthError is a refused login: the server accepted none of the keys
// offered.
type AuthError struct {
	User    string
	Host    string   // host:port
	Offered []string // the keys offered, in order ("/home/u/.ssh/id_exe (ED25519 SHA256:…)")
	Notes   []string // keys not offered, and why
	Err     error    // the SSH library's error
}

func (e *AuthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ssh %s@%s: permission denied (publickey): ", e.User, e.Host)
	if len(e.Offered) == 0 {
		b.WriteString("no key to offer")
	} else {
		fmt.Fprintf(&b, "the server accepted none of the keys offered: %s", strings.Join(e.Offered, ", "))
	}
	if len(e.Notes) > 0 {
		fmt.Fprintf(&b, "; not offered: %s", strings.Join(e.Notes, "; "))
	}
	host, _, err := net.SplitHostPort(e.Host)
	if err != nil {
		host = e.Host
	}
	if len(e.Offered) == 0 {
		b.WriteString(". Fix: create a key (ssh-keygen -t ed25519) or load one into the SSH agent (ssh-add), and authorize it for ")
	} else {
		b.WriteString(". Fix: authorize one of these keys for ")
	}
	fmt.Fprintf(&b, "%s on %s (its ~/.ssh/authorized_keys, or the service's key registration), or choose the right key with IdentityFile in ~/.ssh/config", e.User, host)
	return b.String()
}

func (e *AuthError) Unwrap() error { return e.Err }

// Permanent reports true: the same keys are refused again
// (sandbox.Permanent).
func (e *AuthError) Permanent() bool { return true }

// HostKeyChangedError is a server whose host key differs from the one
// known_hosts holds for it, or that offers no host key of the types
// known_hosts holds for it. The connection is refused.
type HostKeyChangedError struct {
	Dest      string        // user@host:port
	Host      string        // the known_hosts name: "host" or "[host]:port"
	File      string        // the known_hosts file holding the old key
	Line      int           // its line, 0 if unknown
	Presented ssh.PublicKey // what the server showed; nil when it offered no key of a known type
	// PresentedTypes, when Presented is nil, are the host key algorithms
	// the server offered, none of which known_hosts holds a key of.
	PresentedTypes []string
	Known          ssh.PublicKey // what the file holds
}

// Permanent reports true: the key stays changed (sandbox.Permanent).
func (e *HostKeyChangedError) Permanent() bool { return true }

func (e *HostKeyChangedError) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	presented := "offers only " + strings.Join(e.PresentedTypes, ", ") + " host keys"
	if e.Presented != nil {
		presented = "presented " + keyLabel(e.Presented)
	}
	return fmt.Sprintf("ssh %s: the host key of %s has changed: the server %s, but %s holds %s. "+
		"Someone may be intercepting the connection, or the server was reinstalled or replaced. "+
		"If you trust the new key, remove the old one with: ssh-keygen -R %s -f %s",
		e.Dest, e.Host, presented, where, keyLabel(e.Known), shell.Quote(e.Host), shell.Quote(e.File))
}

// HostKeyRejectedError is a server whose host key the caller's own check
// (Config.HostKeyCallback or Config.HostKeys, such as a pinned key)
// refused. The connection is refused.
type HostKeyRejectedError struct {
	Dest string // user@host:port
	Err  error  // why the check refused the key
}

func (e *HostKeyRejectedError) Error() string {
	return fmt.Sprintf("ssh %s: host key rejected: %v", e.Dest, e.Err)
}

func (e *HostKeyRejectedError) Unwrap() error { return e.Err }

// Permanent reports true: the check refuses the same key again
// (sandbox.Permanent).
func (e *HostKeyRejectedError) Permanent() bool { return true }

// HostKeyRevokedError is a server whose host key known_hosts marks
// @revoked. The connection is refused.
type HostKeyRevokedError struct {
	Dest string // user@host:port
	Key  string // the key, as "ED25519 SHA256:…"
	Err  *knownhosts.RevokedError
}

func (e *HostKeyRevokedError) Error() string {
	return fmt.Sprintf("ssh %s: the server's host key %s is marked @revoked in %s:%d: %v",
		e.Dest, e.Key, e.Err.Revoked.Filename, e.Err.Revoked.Line, e.Err)
}

func (e *HostKeyRevokedError) Unwrap() error { return e.Err }

// Permanent reports true (sandbox.Permanent).
func (e *HostKeyRevokedError) Permanent() bool { return true }

// IsRefused reports whether err is a refusal that trying again cannot
// change: the client refusing the server (a changed, rejected or revoked
// host key) or the server refusing the client (no key it accepts, a key
// that cannot be used).
func IsRefused(err error) bool {
	var (
		hk *HostKeyChangedError
		hr *HostKeyRejectedError
		ae *AuthError
		ke *KeyError
		re *knownhosts.RevokedError
	)
	// A HostKeyRevokedError wraps its *knownhosts.RevokedError.
	return errors.As(err, &hk) || errors.As(err, &hr) || errors.As(err, &ae) || errors.As(err, &ke) || errors.As(err, &re)
}

// KeyError is a private key that cannot be used: unreadable, not a key, or
// protected by a passphrase that no agent can stand in for.
type KeyError struct {
	Dest      string // user@host:port
	File      string
	Encrypted bool  // protected by a passphrase
	Err       error // why it cannot be used
}

func (e *KeyError) Error() string {
	if e.Encrypted {
		return fmt.Sprintf("ssh %s: the private key %s is protected by a passphrase and %v. "+
			"Fix: add it to the SSH agent (ssh-add %s), or use a key without a passphrase",
			e.Dest, e.File, e.Err, shell.Quote(e.File))
	}
	return fmt.Sprintf("ssh %s: cannot use the private key %s: %s", e.Dest, e.File, describeFileErr(e.Err))
}

func (e *KeyError) Unwrap() error { return e.Err }

// Permanent reports true: the key stays unusable (sandbox.Permanent).
func (e *KeyError) Permanent() bool { return true }

// IsConnectError reports whether err is a failure to reach the server (DNS,
// refused, reset, timed out, unreachable, closed during handshake), which is
// worth retrying, as opposed to an authentication or host key failure.
func IsConnectError(err error) bool {
	if err == nil {
		return false
	}
	var ce *ConnectError
	switch {
	case IsRefused(err):
		return false
	case errors.As(err, &ce):
		return true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var netErr net.Error
	switch {
	case errors.As(err, &dnsErr), errors.As(err, &opErr):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, os.ErrDeadlineExceeded):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &netErr) && netErr.Timeout():
		return true
	}
	return false
}
