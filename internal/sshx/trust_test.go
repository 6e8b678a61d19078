package sshx

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// A server that offers no host key of the types known_hosts holds for it
// (it has only an ED25519 key; known_hosts an ECDSA one) has changed its
// key: refused as such, with the fix, and known_hosts is left alone.
// Without this, the user saw x/crypto's "no common algorithm for host key".
func TestHostKeyTypeChanged(t *testing.T) {
	t.Parallel()
	srv := startFakeServer(t, mustSigner(t))
	home := newHome(t)
	kh := filepath.Join(home, ".ssh", "known_hosts")
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPub, _ := ssh.NewPublicKey(&ecPriv.PublicKey)
	host := knownhosts.Normalize(srv.addr)
	content := "other.example " + string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(mustSigner(t).PublicKey()))) + "\n" +
		knownhosts.Line([]string{knownhosts.HashHostname(host)}, ecPub) + "\n"
	if err := os.WriteFile(kh, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	priv, _ := genKey(t)
	writeKey(t, filepath.Join(home, ".ssh", "id_ed25519"), priv, "")
	c := newClient(t, Config{Host: srv.addr, User: "u", HomeDir: home, SSHConfigFile: "none", AgentSocket: "none",
		Limiter: NewDialLimiter(0, 1)})
	_, err = c.NewSession(ctxT(t))
	var he *HostKeyChangedError
	if !errors.As(err, &he) {
		t.Fatalf("got %v, want *HostKeyChangedError", err)
	}
	if he.File != kh || he.Line != 2 || he.Host != host || he.Presented != nil ||
		len(he.PresentedTypes) != 1 || he.PresentedTypes[0] != ssh.KeyAlgoED25519 {
		t.Errorf("HostKeyChangedError %+v", he)
	}
	wantContains(t, err.Error(), "host key of "+host+" has changed", "offers only ssh-ed25519 host keys",
		kh+":2", "ECDSA "+ssh.FingerprintSHA256(ecPub), "ssh-keygen -R '"+host+"'")
	if IsConnectError(err) {
		t.Error("IsConnectError = true: callers would retry")
	}
	if b := mustRead(t, kh); string(b) != content {
		t.Errorf("known_hosts changed:\n%s", b)
	}
}

// A pinned key (Config.HostKeys, as exe.dev VMs are pinned to the lobby's
// key) of a type the server does not have: refused with a message saying
// so, not x/crypto's bare negotiation error.
func TestPinnedHostKeyTypeMissing(t *testing.T) {
	t.Parallel()
	srv := startFakeServer(t, mustSigner(t)) // ED25519 only
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pinned, _ := ssh.NewPublicKey(&ecPriv.PublicKey)
	called := false
	home := newHome(t)
	priv, _ := genKey(t)
	writeKey(t, filepath.Join(home, ".ssh", "id_ed25519"), priv, "")
	c := newClient(t, Config{Host: srv.addr, User: "u", HomeDir: home, SSHConfigFile: "none", AgentSocket: "none",
		Limiter:         NewDialLimiter(0, 1),
		HostKeys:        []ssh.PublicKey{pinned},
		HostKeyCallback: func(string, net.Addr, ssh.PublicKey) error { called = true; return nil }})
	_, err = c.NewSession(ctxT(t))
	if err == nil {
		t.Fatal("a server without the pinned key's type was accepted")
	}
	if called {
		t.Error("the callback saw a key: the handshake went further than negotiation")
	}
	wantContains(t, err.Error(), "host key rejected", "offers only ssh-ed25519 host keys", "ecdsa-sha2-nistp256", "refusing to connect")
	var ane *ssh.AlgorithmNegotiationError
	if !errors.As(err, &ane) || IsConnectError(err) {
		t.Errorf("error %v: want the negotiation error wrapped, and not a connection error", err)
	}
}
