package sshx

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// KeySource says where the keys offered to a host come from.
type KeySource string

const (
	// KeysExplicit: Config.IdentityFile, offered alone.
	KeysExplicit KeySource = "identity_file"
	// KeysPreferred: Config.PreferredIdentityFile (exe.dev's ~/.ssh/id_exe),
	// which exists and is offered alone.
	KeysPreferred KeySource = "preferred"
	// KeysSSHConfig: the IdentityFile lines of ssh_config for the host,
	// plus the agent's keys unless IdentitiesOnly is yes.
	KeysSSHConfig KeySource = "ssh_config"
	// KeysDefault: the SSH agent's keys, then ~/.ssh/id_ed25519, id_ecdsa
	// and id_rsa, as OpenSSH does.
	KeysDefault KeySource = "default"
)

// Explanation says which keys a Client made from a Config would offer on
// its next dial, and why, without dialling. It is for diagnostics (moat
// doctor): a Client decides the same way.
type Explanation struct {
	// Dest is the resolved destination, "user@host:port".
	Dest string
	// Source is where the keys come from; Reason says it in a sentence.
	Source KeySource
	Reason string
	// Offered are the keys a dial would offer, in order; empty when there
	// is nothing to offer (authentication cannot succeed).
	Offered []OfferedKey
	// Notes are keys passed over, and why (unreadable files, encrypted keys
	// no agent holds, an unreachable agent).
	Notes []string
	// Agent is the SSH agent, and whether a dial consults it.
	Agent AgentStatus
	// KnownHostsFile is where the host key is checked and, on a first
	// connection, recorded (accept-new); "" when Config.HostKeyCallback
	// replaces known_hosts.
	KnownHostsFile string
	// HostKnown says whether the known_hosts files already hold a key for
	// the destination.
	HostKnown bool
	// KnownHostsErr is why the known_hosts files cannot be read, if so
	// (a dial would fail the same way).
	KnownHostsErr error
}

// OfferedKey is one key a dial would offer.
type OfferedKey struct {
	// File is the private key file; "" for a key only the agent holds.
	File string
	// Fingerprint is the public key's SHA256 fingerprint ("SHA256:…").
	Fingerprint string
	// Label is the key type and fingerprint: "ED25519 SHA256:…".
	Label string
	// Description is how errors name the key (AuthError.Offered).
	Description string
	// ViaAgent says the SSH agent signs with it: an agent key, or an
	// encrypted key file the agent holds.
	ViaAgent bool
}

// AgentStatus describes the SSH agent for one destination.
type AgentStatus struct {
	// Socket is the agent's socket; "" when no agent is configured.
	Socket string
	// Consulted says whether a dial asks the agent, for its keys or to sign
	// for an encrypted key file. With a key used alone (KeysExplicit,
	// KeysPreferred) that is not encrypted, it is never asked.
	Consulted bool
	// Keys describe the keys the agent holds now. Explain asks the agent
	// only when a dial would (Consulted): a key used alone means the agent
	// is never contacted, not even to list its keys.
	Keys []string
	// Problem is why the agent has no key to give ("" when it has some):
	// not running, unreachable, empty, turned off, or not asked.
	Problem string
}

// Explain tells which keys a Client made from cfg would offer, and why. It
// reads ssh_config, the key files, the agent and known_hosts, and dials
// nothing. The error is a *KeyError when the one key chosen cannot be used
// (unreadable, not a key, or encrypted with no agent holding it), or a bad
// Config; the Explanation then holds what was found before it (Dest,
// Source, Reason when known).
func Explain(ctx context.Context, cfg Config) (Explanation, error) {
	var ex Explanation
	r, err := resolve(cfg)
	if err != nil {
		var ke *KeyError
		if errors.As(err, &ke) {
			ex.Dest = ke.Dest
			if cfg.IdentityFile != "" {
				ex.Source = KeysExplicit
				ex.Reason = "the configured key " + ke.File + ", used alone"
			} else {
				ex.Source = KeysPreferred
				ex.Reason = ke.File + " exists: it is used alone"
			}
		}
		return ex, err
	}
	ex.Dest = r.dest
	ex.Source, ex.Reason = explainPlan(cfg, r)

	ex.Agent = AgentStatus{Socket: r.agentSocket, Consulted: r.keys.agent}
	for _, f := range r.keys.files {
		if f.encrypted {
			ex.Agent.Consulted = true
		}
	}
	if ex.Agent.Consulted {
		ag := r.openAgent(ctx)
		if ag.conn != nil {
			ag.conn.Close()
		}
		ex.Agent.Keys, ex.Agent.Problem = ag.names, ag.problem
	} else {
		// Listing the agent's keys is contacting it, which a key used alone
		// rules out (DESIGN: "then only that key, never the agent").
		ex.Agent.Problem = "the SSH agent is not asked: " + notAskedWhy(r)
	}

	if r.hostKeyCB == nil {
		ex.KnownHostsFile = r.knownHosts
		if db, err := r.loadKnownHosts(); err != nil {
			ex.KnownHostsErr = err
		} else {
			ex.HostKnown = len(knownAlgorithms(db, r.addr)) > 0
		}
	}

	keys, err := r.authKeys(ctx)
	if err != nil {
		return ex, err
	}
	defer keys.close()
	ex.Notes = keys.notes
	plain := map[string]string{}     // public key → file, for keys read from files
	encrypted := map[string]string{} // public key → file, for encrypted files
	for _, f := range r.keys.files {
		switch {
		case f.signer != nil:
			plain[string(f.pub.Marshal())] = f.path
		case f.pub != nil:
			encrypted[string(f.pub.Marshal())] = f.path
		}
	}
	for i, s := range keys.signers {
		pub := s.PublicKey()
		k := OfferedKey{
			Fingerprint: ssh.FingerprintSHA256(pub),
			Label:       keyLabel(pub),
			Description: keys.offered[i],
		}
		if f, ok := plain[string(pub.Marshal())]; ok && !strings.HasPrefix(k.Description, "agent key") {
			k.File = f
		} else {
			k.ViaAgent = true
			k.File = encrypted[string(pub.Marshal())]
		}
		ex.Offered = append(ex.Offered, k)
	}
	return ex, nil
}

// notAskedWhy says why a dial with r's keys does not consult the agent.
func notAskedWhy(r *resolved) string {
	switch r.keys.mode {
	case modeExplicit, modePreferred:
		return r.keys.files[0].path + " is used alone"
	case modeSSHConfig:
		return "IdentitiesOnly yes"
	}
	return "no key needs it"
}

// explainPlan says in words why r's keys were chosen.
func explainPlan(cfg Config, r *resolved) (KeySource, string) {
	var preferred string
	if cfg.PreferredIdentityFile != "" {
		preferred = expandPath(cfg.PreferredIdentityFile, r.home, r)
	}
	switch r.keys.mode {
	case modeExplicit:
		return KeysExplicit, fmt.Sprintf("the configured key %s, used alone (the SSH agent's keys are not offered)", r.keys.files[0].path)
	case modePreferred:
		return KeysPreferred, fmt.Sprintf("%s exists: it is used alone, whatever ~/.ssh/config says, and the SSH agent's keys are not offered", r.keys.files[0].path)
	case modeSSHConfig:
		why := fmt.Sprintf("IdentityFile for %s in %s", r.alias, sshConfigPath(cfg, r.home))
		if r.keys.only {
			why += ", with IdentitiesOnly yes (those keys only)"
		} else {
			why += ", then the SSH agent's keys"
		}
		if preferred != "" {
			why += "; there is no " + preferred
		}
		return KeysSSHConfig, why
	}
	why := "no key is configured"
	if preferred != "" {
		why += " and there is no " + preferred
	}
	names := make([]string, len(defaultKeyNames))
	for i, n := range defaultKeyNames {
		names[i] = filepath.Join("~", ".ssh", n)
	}
	return KeysDefault, why + ": the SSH agent's keys, then the default key files " + strings.Join(names, ", ")
}

// sshConfigPath is the ssh_config file resolve reads for cfg.
func sshConfigPath(cfg Config, home string) string {
	switch cfg.SSHConfigFile {
	case "none":
		return "(no ssh_config)"
	case "":
		return filepath.Join(home, ".ssh", "config")
	}
	return expandPath(cfg.SSHConfigFile, home, nil)
}
