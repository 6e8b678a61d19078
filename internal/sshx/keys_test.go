package sshx

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatdev/moat/internal/sshdtest"
	"golang.org/x/crypto/ssh"
)

func fingerprint(priv ed25519.PrivateKey) string {
	pub, _ := ssh.NewPublicKey(priv.Public())
	return ssh.FingerprintSHA256(pub)
}

func pubOf(priv ed25519.PrivateKey) ssh.PublicKey {
	pub, _ := ssh.NewPublicKey(priv.Public())
	return pub
}

func wantContains(t *testing.T, msg string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
}

// ~/.ssh/id_exe, when present, is used alone: not the default keys, and the
// agent is never asked.
func TestPreferredIdentityAlone(t *testing.T) {
	t.Parallel()
	exePriv, _ := genKey(t)
	srv := sshdtest.Start(t, sshdtest.Options{AuthorizedKeys: []ssh.PublicKey{pubOf(exePriv)}})
	home := newHome(t)
	writeKey(t, filepath.Join(home, ".ssh", "id_exe"), exePriv, "")
	otherPriv, _ := genKey(t)
	writeKey(t, filepath.Join(home, ".ssh", "id_ed25519"), otherPriv, "") // not authorized
	agentPriv, _ := genKey(t)
	ag := startAgent(t, agentPriv) // not authorized

	cfg := baseConfig(t, srv, home)
	cfg.AgentSocket = ag.socket
	cfg.PreferredIdentityFile = "~/.ssh/id_exe"
	c := newClient(t, cfg)
	if got := run(t, c, "echo hi"); got != "hi" {
		t.Fatalf("got %q", got)
	}
	if n := ag.calls(); n != 0 {
		t.Fatalf("the agent was asked %d times; want never", n)
	}

	// Without id_exe the same setup falls back to the agent and the default
	// keys, none of which is authorized: the agent is asked, and the error
	// names what was offered.
	if err := os.Remove(filepath.Join(home, ".ssh", "id_exe")); err != nil {
		t.Fatal(err)
	}
	c2 := newClient(t, cfg)
	_, err := c2.NewSession(ctxT(t))
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want *AuthError", err)
	}
	if ag.calls() == 0 {
		t.Fatal("the agent was not asked when there is no id_exe")
	}
	wantContains(t, err.Error(),
		"ssh "+srv.User+"@"+srv.Addr+": permission denied",
		filepath.Join(home, ".ssh", "id_ed25519")+" (ED25519 "+fingerprint(otherPriv)+")",
		`agent key "agent test key" (ED25519 `+fingerprint(agentPriv)+")",
		"authorize one of these keys for "+srv.User)
	if len(ae.Offered) != 2 || !strings.HasPrefix(ae.Offered[0], "agent key") {
		t.Errorf("offered %q; want the agent's key, then id_ed25519", ae.Offered)
	}
	if IsConnectError(err) {
		t.Error("IsConnectError(auth failure) = true")
	}
}

// With no id_exe and no key file, the agent's keys are used.
func TestAgentKeys(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t, sshdtest.Options{})
	home := newHome(t)
	strangerPriv, _ := genKey(t)
	keyPriv := readTestKey(t, srv.KeyFile)
	ag := startAgent(t, strangerPriv, keyPriv)

	cfg := baseConfig(t, srv, home)
	cfg.AgentSocket = ag.socket
	cfg.PreferredIdentityFile = filepath.Join(home, ".ssh", "id_exe") // absent
	c := newClient(t, cfg)
	if got := run(t, c, "echo agent"); got != "agent" {
		t.Fatalf("got %q", got)
	}
	if ag.signs.Load() == 0 {
		t.Fatal("the agent signed nothing")
	}
}

func readTestKey(t *testing.T, path string) ed25519.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return *k.(*ed25519.PrivateKey)
}

// The default key files are used when there is no agent.
func TestDefaultKeyFiles(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t, sshdtest.Options{})
	home := newHome(t)
	writeKey(t, filepath.Join(home, ".ssh", "id_ecdsa"), readTestKey(t, srv.KeyFile), "") // any name of the three
	c := newClient(t, baseConfig(t, srv, home))
	if got := run(t, c, "echo default"); got != "default" {
		t.Fatalf("got %q", got)
	}
}

// An encrypted key given alone, with no agent to sign for it, is a clear
// error naming the file and the fix, before anything is dialled.
func TestEncryptedKeyWithoutAgent(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t, sshdtest.Options{})
	home := newHome(t)
	key := filepath.Join(home, ".ssh", "id_exe")
	writeKey(t, key, readTestKey(t, srv.KeyFile), "secret passphrase")

	for _, name := range []string{"IdentityFile", "PreferredIdentityFile"} {
		t.Run(name, func(t *testing.T) {
			cfg := baseConfig(t, srv, home)
			if name == "IdentityFile" {
				cfg.IdentityFile = key
			} else {
				cfg.PreferredIdentityFile = key
			}
			c := newClient(t, cfg)
			_, err := c.NewSession(ctxT(t))
			var ke *KeyError
			if !errors.As(err, &ke) || !ke.Encrypted || ke.File != key {
				t.Fatalf("got %v, want *KeyError for the encrypted %s", err, key)
			}
			wantContains(t, err.Error(), key, "passphrase", "ssh-add "+key, "the SSH agent is not used")
			if strings.Contains(err.Error(), "secret passphrase") {
				t.Error("the error shows the passphrase")
			}
			if IsConnectError(err) {
				t.Error("IsConnectError(key error) = true")
			}
			if n := c.Stats().Dials; n != 0 {
				t.Errorf("%d dials; want none", n)
			}
		})
	}

	// An agent that does not hold it: same error, saying so.
	t.Run("agent without it", func(t *testing.T) {
		other, _ := genKey(t)
		ag := startAgent(t, other)
		cfg := baseConfig(t, srv, home)
		cfg.IdentityFile = key
		cfg.AgentSocket = ag.socket
		_, err := newClient(t, cfg).NewSession(ctxT(t))
		var ke *KeyError
		if !errors.As(err, &ke) {
			t.Fatalf("got %v, want *KeyError", err)
		}
		wantContains(t, err.Error(), "the SSH agent does not hold it")
	})

	// A default key that is encrypted is skipped, and the auth error says
	// why nothing worked.
	t.Run("default key", func(t *testing.T) {
		home := newHome(t)
		def := filepath.Join(home, ".ssh", "id_ed25519")
		writeKey(t, def, readTestKey(t, srv.KeyFile), "pw")
		_, err := newClient(t, baseConfig(t, srv, home)).NewSession(ctxT(t))
		var ae *AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("got %v, want *AuthError", err)
		}
		wantContains(t, err.Error(), "no key to offer", def+": protected by a passphrase", "ssh-add "+def, "the SSH agent is not used")
	})
}

// An encrypted key is used through the agent that holds it.
func TestEncryptedKeyWithAgent(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t, sshdtest.Options{})
	home := newHome(t)
	key := filepath.Join(home, ".ssh", "id_exe")
	priv := readTestKey(t, srv.KeyFile)
	writeKey(t, key, priv, "pw")
	stranger, _ := genKey(t)
	ag := startAgent(t, stranger, priv)

	cfg := baseConfig(t, srv, home)
	cfg.PreferredIdentityFile = key
	cfg.AgentSocket = ag.socket
	c := newClient(t, cfg)
	if got := run(t, c, "echo via agent"); got != "via agent" {
		t.Fatalf("got %q", got)
	}

	// Without the .pub file the public key comes from the file itself
	// (OpenSSH's format stores it in clear).
	os.Remove(key + ".pub")
	c2 := newClient(t, cfg)
	if got := run(t, c2, "echo again"); got != "again" {
		t.Fatalf("got %q", got)
	}
}

func TestNoKeysAtAll(t *testing.T) {
	t.Parallel()
	srv := sshdtest.Start(t, sshdtest.Options{})
	home := newHome(t)
	_, err := newClient(t, baseConfig(t, srv, home)).NewSession(ctxT(t))
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want *AuthError", err)
	}
	wantContains(t, err.Error(), "no key to offer", "the SSH agent is not used", "no key file in "+filepath.Join(home, ".ssh"), "ssh-keygen")
}

func TestUnreadableExplicitKey(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	cfg := Config{Host: "example.invalid", HomeDir: home, SSHConfigFile: "none", AgentSocket: "none", IdentityFile: "~/.ssh/nope"}
	_, err := New(cfg)
	var ke *KeyError
	if !errors.As(err, &ke) {
		t.Fatalf("got %v, want *KeyError", err)
	}
	wantContains(t, err.Error(), filepath.Join(home, ".ssh", "nope"), "no such file")

	bad := filepath.Join(home, ".ssh", "garbage")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	cfg.IdentityFile = bad
	_, err = New(cfg)
	if !errors.As(err, &ke) {
		t.Fatalf("got %v, want *KeyError", err)
	}
	wantContains(t, err.Error(), bad, "not a private key")
}

// ~/.ssh/config: an alias resolves to HostName, Port, User and IdentityFile;
// with IdentitiesOnly the agent is not used.
func TestSSHConfigAlias(t *testing.T) {
	t.Parallel()
	keyPriv, _ := genKey(t)
	srv := sshdtest.Start(t, sshdtest.Options{AuthorizedKeys: []ssh.PublicKey{pubOf(keyPriv)}})
	home := newHome(t)
	writeKey(t, filepath.Join(home, ".ssh", "work_key"), keyPriv, "")
	conf := "Host other\n  HostName 10.9.9.9\n\n" +
		"Host myvm\n  HostName " + srv.Host + "\n  Port " + itoa(srv.Port) + "\n  User " + srv.User +
		"\n  IdentityFile ~/.ssh/work_key\n  IdentitiesOnly yes\n"
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	stranger, _ := genKey(t)
	ag := startAgent(t, stranger)
	if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), mustRead(t, srv.KnownHostsFile), 0o600); err != nil {
		t.Fatal(err)
	}
	log, _ := newTestLog(t)
	c := newClient(t, Config{Host: "myvm", HomeDir: home, AgentSocket: ag.socket, Limiter: NewDialLimiter(0, 1), Logger: log})
	if c.Addr() != srv.Addr || c.User() != srv.User {
		t.Fatalf("resolved %s@%s, want %s@%s", c.User(), c.Addr(), srv.User, srv.Addr)
	}
	if got := run(t, c, "echo alias"); got != "alias" {
		t.Fatalf("got %q", got)
	}
	if ag.calls() != 0 {
		t.Error("the agent was asked despite IdentitiesOnly yes")
	}

	// Config fields win over the file.
	c2 := newClient(t, Config{Host: "myvm", Port: 2200, User: "bob", HomeDir: home, AgentSocket: "none"})
	if c2.Addr() != srv.Host+":2200" || c2.User() != "bob" {
		t.Fatalf("resolved %s@%s", c2.User(), c2.Addr())
	}
}

func TestResolve(t *testing.T) {
	home := newHome(t)
	conf := `Host *.exe.xyz
  User vmuser
Host short
  HostName %h.example.com
  Port 2222
Host *
  IdentityAgent none
`
	os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(conf), 0o600)
	t.Setenv("SSH_AUTH_SOCK", "/nonexistent/agent")
	for _, tc := range []struct {
		cfg              Config
		addr, user, sock string
	}{
		{Config{Host: "short"}, "short.example.com:2222", localUser(), ""},
		{Config{Host: "short:22"}, "short.example.com:22", localUser(), ""},
		{Config{Host: "alice@vm1.exe.xyz"}, "vm1.exe.xyz:22", "alice", ""},
		{Config{Host: "vm1.exe.xyz"}, "vm1.exe.xyz:22", "vmuser", ""},
		{Config{Host: "vm1.exe.xyz", User: "carol", Port: 2022, AgentSocket: "/a/s"}, "vm1.exe.xyz:2022", "carol", "/a/s"},
		{Config{Host: "[::1]:2222"}, "[::1]:2222", localUser(), ""},
		{Config{Host: "::1"}, "[::1]:22", localUser(), ""},
		{Config{Host: "exe.dev", SSHConfigFile: "none"}, "exe.dev:22", localUser(), "/nonexistent/agent"},
	} {
		tc.cfg.HomeDir = home
		c, err := New(tc.cfg)
		if err != nil {
			t.Errorf("%+v: %v", tc.cfg, err)
			continue
		}
		if c.Addr() != tc.addr || c.User() != tc.user || c.r.agentSocket != tc.sock {
			t.Errorf("%q: got %s@%s agent %q; want %s@%s agent %q", tc.cfg.Host, c.User(), c.Addr(), c.r.agentSocket, tc.user, tc.addr, tc.sock)
		}
		if tc.cfg.HostKeyCallback == nil && c.r.knownHosts != filepath.Join(home, ".ssh", "known_hosts") {
			t.Errorf("known hosts %q", c.r.knownHosts)
		}
	}
	if _, err := New(Config{Host: "", HomeDir: home}); err == nil {
		t.Error("empty host accepted")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A "Host *" IdentityFile in ~/.ssh/config, common in users' configs, does
// not hide ~/.ssh/id_exe.
func TestPreferredIdentityBeatsWildcardSSHConfig(t *testing.T) {
	t.Parallel()
	exePriv, _ := genKey(t)
	srv := sshdtest.Start(t, sshdtest.Options{AuthorizedKeys: []ssh.PublicKey{pubOf(exePriv)}})
	home := newHome(t)
	writeKey(t, filepath.Join(home, ".ssh", "id_exe"), exePriv, "")
	otherPriv, _ := genKey(t)
	writeKey(t, filepath.Join(home, ".ssh", "id_work"), otherPriv, "") // not authorized
	conf := filepath.Join(home, ".ssh", "config")
	if err := os.WriteFile(conf, []byte("Host *\n  IdentityFile ~/.ssh/id_work\n  IdentitiesOnly yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t, srv, home)
	cfg.SSHConfigFile = conf
	cfg.PreferredIdentityFile = "~/.ssh/id_exe"
	if got := run(t, newClient(t, cfg), "echo exe"); got != "exe" {
		t.Fatalf("got %q", got)
	}
	cfg.PreferredIdentityFile = ""
	if _, err := newClient(t, cfg).NewSession(ctxT(t)); err == nil {
		t.Fatal("without id_exe preferred, the ssh_config key (unauthorized) should have been used and refused")
	}
}
