package sshx

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/moatdev/moat/internal/sshdtest"
	"github.com/moatdev/moat/sandbox"
)

// A host key known_hosts marks @revoked is refused, by a real sshd, with
// a HostKeyRevokedError that names the file and line, and that the
// orchestrator's retries see as permanent through the sandbox package
// alone.
func TestHostKeyRevokedIsPermanent(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t, sshdtest.Options{})
	home := newHome(t)
	kh := filepath.Join(home, ".ssh", "known_hosts")
	line := "@revoked " + knownhosts.Normalize(srv.Addr) + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKey))) + "\n"
	if err := os.WriteFile(kh, []byte("# first\n"+line), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t, srv, home)
	cfg.KnownHostsFile = ""
	cfg.IdentityFile = srv.KeyFile
	_, err := newClient(t, cfg).NewSession(ctxT(t))
	var re *HostKeyRevokedError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want *HostKeyRevokedError", err)
	}
	wantContains(t, err.Error(), "is marked @revoked in "+kh+":2")
	if !IsRefused(err) || !sandbox.IsPermanent(err) {
		t.Errorf("IsRefused %v, sandbox.IsPermanent %v; want both", IsRefused(err), sandbox.IsPermanent(err))
	}
}

// Every refusal IsRefused knows is sandbox.Permanent, wrapped or not; a
// connection that could not be made is not.
func TestRefusalsArePermanent(t *testing.T) {
	for _, err := range []error{
		&AuthError{User: "u", Host: "h:22"},
		&HostKeyChangedError{Known: pubOfT(t)},
		&HostKeyRejectedError{Dest: "u@h:22", Err: errors.New("pinned")},
		&KeyError{Dest: "u@h:22", File: "k", Err: errors.New("bad")},
	} {
		wrapped := errors.Join(errors.New("sync out"), err)
		if !IsRefused(err) || !sandbox.IsPermanent(err) || !sandbox.IsPermanent(wrapped) {
			t.Errorf("%T: IsRefused %v, IsPermanent %v, wrapped %v; want all", err, IsRefused(err), sandbox.IsPermanent(err), sandbox.IsPermanent(wrapped))
		}
	}
	if err := (&ConnectError{Dest: "u@h:22", Err: errors.New("connection refused")}); sandbox.IsPermanent(err) {
		t.Errorf("%v is permanent; want a connect error retried", err)
	}
}

func pubOfT(t *testing.T) ssh.PublicKey {
	_, signer := genKey(t)
	return signer.PublicKey()
}
