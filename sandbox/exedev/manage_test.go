package exedev_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
)

func TestWhoami(t *testing.T) {
	srv := exedevtest.NewServer(t)
	acct, err := exedev.New(srv.Config()).Whoami(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cur, ok := acct.CurrentKey()
	if acct.Email == "" || !ok || cur.Fingerprint != gossh.FingerprintSHA256(srv.ClientKey()) || !strings.HasPrefix(cur.PublicKey, "ssh-ed25519 ") {
		t.Errorf("Whoami = %+v", acct)
	}

	unreg := exedevtest.NewServer(t, exedevtest.WithUnregisteredKey())
	_, err = exedev.New(unreg.Config()).Whoami(t.Context())
	if !errors.Is(err, exedev.ErrUnregistered) {
		t.Fatalf("Whoami with an unregistered key: %v; want ErrUnregistered", err)
	}
}

// Hold keeps one lobby connection across calls: with a dial limiter that
// allows a single connection, three calls still succeed.
func TestHold(t *testing.T) {
	srv := exedevtest.NewServer(t)
	cfg := srv.Config()
	cfg.SSH.Limiter = sshx.NewDialLimiter(time.Hour, 1)
	p := exedev.New(cfg)
	release, err := p.Hold()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for range 2 {
		if _, err := p.ListAll(ctx); err != nil {
			t.Fatalf("ListAll while held: %v", err)
		}
	}
	if _, err := p.Whoami(ctx); err != nil {
		t.Fatalf("Whoami while held: %v", err)
	}
	release()
	release() // idempotent

	// Released, the next call needs a new connection, which the limiter
	// withholds.
	short, cancel2 := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel2()
	if _, err := p.ListAll(short); err == nil {
		t.Error("ListAll after release made a second connection despite the limiter")
	}

	// An unusable key fails at Hold, without dialling.
	cfg.IdentityFile = filepath.Join(t.TempDir(), "missing")
	if _, err := exedev.New(cfg).Hold(); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Hold with a missing key: %v", err)
	}
}

func TestLobbySSHConfig(t *testing.T) {
	srv := exedevtest.NewServer(t)
	cfg := srv.Config()
	cfg.User = "someone"
	p := exedev.New(cfg)
	c := p.LobbySSHConfig()
	if c.Host != srv.LobbyAddr() || c.User != "someone" || c.IdentityFile != srv.KeyFile() || c.KnownHostsFile != srv.KnownHostsFile() {
		t.Errorf("LobbySSHConfig = %+v", c)
	}
	if want := filepath.Join(cfg.SSH.HomeDir, ".ssh", "id_exe"); c.PreferredIdentityFile != want {
		t.Errorf("PreferredIdentityFile %q, want %q", c.PreferredIdentityFile, want)
	}
	if got, want := p.LobbySSHCommand(), "ssh -p "+strings.TrimPrefix(srv.LobbyAddr(), "127.0.0.1:")+" 127.0.0.1"; got != want {
		t.Errorf("LobbySSHCommand = %q, want %q", got, want)
	}
	if got := exedev.New(exedev.Config{}).LobbySSHCommand(); got != "ssh exe.dev" {
		t.Errorf("default LobbySSHCommand = %q", got)
	}
}
