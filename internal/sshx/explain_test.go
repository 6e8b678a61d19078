package sshx

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// explainConfig is a Config for a host that is never dialled, with nothing
// from the machine: no ssh_config, no agent.
func explainConfig(home string) Config {
	return Config{
		Host:                  "lobby.example.invalid:2222",
		User:                  "me",
		HomeDir:               home,
		SSHConfigFile:         "none",
		AgentSocket:           "none",
		PreferredIdentityFile: "~/.ssh/id_exe",
	}
}

func offeredFiles(ex Explanation) []string {
	var out []string
	for _, k := range ex.Offered {
		if k.File == "" {
			out = append(out, "agent")
		} else {
			out = append(out, k.File)
		}
	}
	return out
}

func TestExplainExplicit(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	priv, _ := genKey(t)
	key := filepath.Join(home, "keys", "lobby")
	os.Mkdir(filepath.Dir(key), 0o700)
	writeKey(t, key, priv, "")
	writeKey(t, filepath.Join(home, ".ssh", "id_exe"), priv, "") // loses to the explicit key
	agentPriv, _ := genKey(t)
	ag := startAgent(t, agentPriv)

	cfg := explainConfig(home)
	cfg.IdentityFile = key
	cfg.AgentSocket = ag.socket
	ex, err := Explain(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Source != KeysExplicit || ex.Dest != "me@lobby.example.invalid:2222" {
		t.Errorf("Source %q, Dest %q", ex.Source, ex.Dest)
	}
	if len(ex.Offered) != 1 || ex.Offered[0].File != key || ex.Offered[0].Fingerprint != fingerprint(priv) ||
		ex.Offered[0].Label != "ED25519 "+fingerprint(priv) || ex.Offered[0].ViaAgent {
		t.Errorf("Offered = %+v", ex.Offered)
	}
	wantContains(t, ex.Reason, key, "used alone")
	// The agent is not consulted, nor even asked for its keys.
	if ex.Agent.Consulted || ex.Agent.Socket != ag.socket || len(ex.Agent.Keys) != 0 {
		t.Errorf("Agent = %+v", ex.Agent)
	}
	wantContains(t, ex.Agent.Problem, "not asked", key+" is used alone")
	if ag.calls() != 0 {
		t.Errorf("Explain asked the agent (%d lists, %d signs)", ag.lists.Load(), ag.signs.Load())
	}

	// A missing explicit key: the KeyError, and what is known.
	cfg.IdentityFile = filepath.Join(home, "nope")
	ex, err = Explain(ctxT(t), cfg)
	var ke *KeyError
	if !errors.As(err, &ke) || ke.File != cfg.IdentityFile {
		t.Fatalf("got %v, want *KeyError for %s", err, cfg.IdentityFile)
	}
	if ex.Source != KeysExplicit || ex.Dest != "me@lobby.example.invalid:2222" {
		t.Errorf("partial explanation %+v", ex)
	}
}

func TestExplainPreferred(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	exePriv, _ := genKey(t)
	writeKey(t, filepath.Join(home, ".ssh", "id_exe"), exePriv, "")
	otherPriv, _ := genKey(t)
	writeKey(t, filepath.Join(home, ".ssh", "id_ed25519"), otherPriv, "")
	conf := "Host *\n  IdentityFile ~/.ssh/id_ed25519\n"
	os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(conf), 0o600)
	agentPriv, _ := genKey(t)
	ag := startAgent(t, agentPriv)

	cfg := explainConfig(home)
	cfg.SSHConfigFile = ""
	cfg.AgentSocket = ag.socket
	ex, err := Explain(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	idExe := filepath.Join(home, ".ssh", "id_exe")
	if ex.Source != KeysPreferred || len(ex.Offered) != 1 || ex.Offered[0].File != idExe {
		t.Fatalf("Source %q, offered %q", ex.Source, offeredFiles(ex))
	}
	wantContains(t, ex.Reason, idExe+" exists", "used alone", "not offered")
	if ex.Agent.Consulted || len(ex.Agent.Keys) != 0 || !strings.Contains(ex.Agent.Problem, "not asked") {
		t.Errorf("Agent = %+v; want not consulted, not even listed", ex.Agent)
	}
	if ag.calls() != 0 {
		t.Errorf("Explain asked the agent (%d lists, %d signs)", ag.lists.Load(), ag.signs.Load())
	}
}

func TestExplainSSHConfig(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	workPriv, _ := genKey(t)
	work := filepath.Join(home, ".ssh", "work_key")
	writeKey(t, work, workPriv, "")
	agentPriv, _ := genKey(t)
	ag := startAgent(t, agentPriv)
	confFile := filepath.Join(home, ".ssh", "config")

	for _, only := range []bool{false, true} {
		conf := "Host lobby.example.invalid\n  IdentityFile ~/.ssh/work_key\n  IdentityFile ~/.ssh/missing_key\n"
		if only {
			conf += "  IdentitiesOnly yes\n"
		}
		// Each round has its own config file: the subtests share home.
		f := confFile + map[bool]string{false: ".a", true: ".b"}[only]
		if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := explainConfig(home)
		cfg.SSHConfigFile = f
		cfg.AgentSocket = ag.socket
		ex, err := Explain(ctxT(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Source != KeysSSHConfig {
			t.Fatalf("Source %q", ex.Source)
		}
		wantContains(t, ex.Reason, "IdentityFile for lobby.example.invalid in "+f, "there is no "+filepath.Join(home, ".ssh", "id_exe"))
		wantContains(t, strings.Join(ex.Notes, "\n"), filepath.Join(home, ".ssh", "missing_key"), "no such file")
		got := strings.Join(offeredFiles(ex), " ")
		if only {
			wantContains(t, ex.Reason, "IdentitiesOnly yes")
			if got != work || ex.Agent.Consulted {
				t.Errorf("IdentitiesOnly: offered %q, agent consulted %v", got, ex.Agent.Consulted)
			}
		} else {
			if got != work+" agent" || !ex.Agent.Consulted || !ex.Offered[1].ViaAgent {
				t.Errorf("offered %q (%+v), agent consulted %v", got, ex.Offered, ex.Agent.Consulted)
			}
		}
	}
}

func TestExplainDefault(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	filePriv, _ := genKey(t)
	def := filepath.Join(home, ".ssh", "id_ed25519")
	writeKey(t, def, filePriv, "")
	os.WriteFile(filepath.Join(home, ".ssh", "id_rsa"), []byte("garbage"), 0o600)
	agentPriv, _ := genKey(t)
	ag := startAgent(t, agentPriv)

	cfg := explainConfig(home)
	cfg.AgentSocket = ag.socket
	ex, err := Explain(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Source != KeysDefault {
		t.Fatalf("Source %q", ex.Source)
	}
	wantContains(t, ex.Reason, "no key is configured", "no "+filepath.Join(home, ".ssh", "id_exe"), "SSH agent's keys, then the default key files")
	// The agent first, as OpenSSH does, then the files.
	if got := strings.Join(offeredFiles(ex), " "); got != "agent "+def {
		t.Errorf("offered %q", got)
	}
	if ex.Offered[0].Fingerprint != fingerprint(agentPriv) || !strings.Contains(ex.Offered[0].Description, "agent test key") {
		t.Errorf("agent key %+v", ex.Offered[0])
	}
	wantContains(t, strings.Join(ex.Notes, "\n"), filepath.Join(home, ".ssh", "id_rsa"))
	if !ex.Agent.Consulted || len(ex.Agent.Keys) != 1 {
		t.Errorf("Agent = %+v", ex.Agent)
	}

	// Nothing at all: no agent, no files.
	empty := newHome(t)
	ex, err = Explain(ctxT(t), explainConfig(empty))
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Offered) != 0 || ex.Source != KeysDefault {
		t.Errorf("offered %q from %q; want nothing", offeredFiles(ex), ex.Source)
	}
	wantContains(t, strings.Join(ex.Notes, "\n"), "the SSH agent is not used", "no key file in "+filepath.Join(empty, ".ssh"))
	if ex.Agent.Problem == "" || ex.Agent.Socket != "" {
		t.Errorf("Agent = %+v", ex.Agent)
	}
}

func TestExplainNoAgentRunning(t *testing.T) {
	home := newHome(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	cfg := explainConfig(home)
	cfg.AgentSocket = ""
	ex, err := Explain(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, ex.Agent.Problem, "SSH_AUTH_SOCK is not set")

	t.Setenv("SSH_AUTH_SOCK", filepath.Join(home, "no-agent.sock"))
	ex, err = Explain(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, ex.Agent.Problem, "cannot be reached")
}

func TestExplainEncrypted(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	priv, _ := genKey(t)
	idExe := filepath.Join(home, ".ssh", "id_exe")
	writeKey(t, idExe, priv, "pw")

	// No agent: the key cannot be used.
	ex, err := Explain(ctxT(t), explainConfig(home))
	var ke *KeyError
	if !errors.As(err, &ke) || !ke.Encrypted || ke.File != idExe {
		t.Fatalf("got %v, want *KeyError for the encrypted %s", err, idExe)
	}
	if ex.Source != KeysPreferred || ex.Dest == "" {
		t.Errorf("partial explanation %+v", ex)
	}

	// The agent holds it: offered through the agent, and the agent is
	// consulted for it only.
	stranger, _ := genKey(t)
	ag := startAgent(t, stranger, priv)
	cfg := explainConfig(home)
	cfg.AgentSocket = ag.socket
	ex, err = Explain(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Offered) != 1 || ex.Offered[0].File != idExe || !ex.Offered[0].ViaAgent || ex.Offered[0].Fingerprint != fingerprint(priv) {
		t.Errorf("Offered = %+v", ex.Offered)
	}
	if !ex.Agent.Consulted || len(ex.Agent.Keys) != 2 {
		t.Errorf("Agent = %+v", ex.Agent)
	}
}

func TestExplainKnownHosts(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	cfg := explainConfig(home)
	ex, err := Explain(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(home, ".ssh", "known_hosts")
	if ex.KnownHostsFile != kh || ex.HostKnown || ex.KnownHostsErr != nil {
		t.Errorf("no known_hosts: file %q, known %v, err %v", ex.KnownHostsFile, ex.HostKnown, ex.KnownHostsErr)
	}

	hostPriv, _ := genKey(t)
	other := knownhosts.Line([]string{"[elsewhere.invalid]:2222"}, pubOf(hostPriv))
	if err := os.WriteFile(kh, []byte(other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ex, _ := Explain(ctxT(t), cfg); ex.HostKnown {
		t.Error("HostKnown for a file holding another host only")
	}
	line := knownhosts.Line([]string{"[lobby.example.invalid]:2222"}, pubOf(hostPriv))
	if err := os.WriteFile(kh, []byte(other+"\n"+line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ex, _ := Explain(ctxT(t), cfg); !ex.HostKnown {
		t.Error("HostKnown = false with the host's line present")
	}

	// A replaced check (exe.dev VMs are pinned) has no known_hosts.
	cfg.HostKeyCallback = func(string, net.Addr, ssh.PublicKey) error { return nil }
	if ex, _ := Explain(ctxT(t), cfg); ex.KnownHostsFile != "" {
		t.Errorf("KnownHostsFile %q with a HostKeyCallback", ex.KnownHostsFile)
	}
}
