package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// defaultKeyNames are the keys OpenSSH tries when no IdentityFile is set.
var defaultKeyNames = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

type keyMode int

const (
	modeExplicit  keyMode = iota // Config.IdentityFile, alone
	modeSSHConfig                // IdentityFile from ssh_config
	modePreferred                // Config.PreferredIdentityFile, alone
	modeDefault                  // agent, then ~/.ssh/id_*
)

// identity is a private key file.
type identity struct {
	path      string
	signer    ssh.Signer    // nil when the key is encrypted
	pub       ssh.PublicKey // nil when encrypted and its public half is unknown
	encrypted bool
}

// keyPlan is which keys to offer, decided by New; the agent is asked at
// each dial, since what it holds changes.
type keyPlan struct {
	mode  keyMode
	files []identity
	agent bool     // offer the agent's keys besides files
	only  bool     // files are the only keys allowed (IdentitiesOnly)
	notes []string // key files passed over, and why
}

func loadIdentity(path string) (identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return identity{}, err
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err == nil {
		return identity{path: path, signer: signer, pub: signer.PublicKey()}, nil
	}
	var pme *ssh.PassphraseMissingError
	if !errors.As(err, &pme) {
		return identity{}, fmt.Errorf("not a private key SSH can use (%v)", err)
	}
	id := identity{path: path, encrypted: true, pub: pme.PublicKey}
	if id.pub == nil {
		if pb, err := os.ReadFile(path + ".pub"); err == nil {
			if pk, _, _, _, err := ssh.ParseAuthorizedKey(pb); err == nil {
				id.pub = pk
			}
		}
	}
	return id, nil
}

func planKeys(cfg Config, sc *sshConfig, r *resolved) (keyPlan, error) {
	if cfg.IdentityFile != "" {
		path := expandPath(cfg.IdentityFile, r.home, r)
		id, err := loadIdentity(path)
		if err != nil {
			return keyPlan{}, &KeyError{Dest: r.dest, File: path, Err: err}
		}
		return keyPlan{mode: modeExplicit, files: []identity{id}, only: true}, nil
	}
	// The preferred key (exe.dev's ~/.ssh/id_exe) wins over ssh_config:
	// a "Host *" IdentityFile, which is common, must not hide it.
	if cfg.PreferredIdentityFile != "" {
		path := expandPath(cfg.PreferredIdentityFile, r.home, r)
		if _, err := os.Stat(path); err == nil {
			id, err := loadIdentity(path)
			if err != nil {
				return keyPlan{}, &KeyError{Dest: r.dest, File: path, Err: err}
			}
			return keyPlan{mode: modePreferred, files: []identity{id}, only: true}, nil
		}
	}
	if files := sc.getAll(r.alias, "IdentityFile"); len(files) > 0 {
		only := strings.EqualFold(sc.get(r.alias, "IdentitiesOnly"), "yes")
		plan := keyPlan{mode: modeSSHConfig, agent: !only, only: only}
		seen := map[string]bool{}
		for _, f := range files {
			path := expandPath(strings.Trim(f, `"`), r.home, r)
			if seen[path] {
				continue
			}
			seen[path] = true
			id, err := loadIdentity(path)
			if err != nil {
				plan.notes = append(plan.notes, fmt.Sprintf("%s (IdentityFile in %s): %s", path, sc.file, describeFileErr(err)))
				r.log.Debug("ssh: skipping identity file", "file", path, "err", err)
				continue
			}
			plan.files = append(plan.files, id)
		}
		return plan, nil
	}
	plan := keyPlan{mode: modeDefault, agent: true}
	if r.home != "" {
		for _, name := range defaultKeyNames {
			path := filepath.Join(r.home, ".ssh", name)
			id, err := loadIdentity(path)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				plan.notes = append(plan.notes, fmt.Sprintf("%s: %s", path, describeFileErr(err)))
				continue
			}
			plan.files = append(plan.files, id)
		}
	}
	return plan, nil
}

func describeFileErr(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// keyLabel names a public key for messages: "ED25519 SHA256:…".
func keyLabel(pub ssh.PublicKey) string {
	t := pub.Type()
	switch {
	case t == ssh.KeyAlgoRSA:
		t = "RSA"
	case t == ssh.KeyAlgoED25519:
		t = "ED25519"
	case strings.HasPrefix(t, "ecdsa-"):
		t = "ECDSA"
	}
	return t + " " + ssh.FingerprintSHA256(pub)
}

// authKeys is what one dial offers.
type authKeys struct {
	signers []ssh.Signer
	offered []string // one description per signer
	notes   []string // keys not offered, and why
	close   func()
}

// agentKeys holds the agent's signers for one dial.
type agentKeys struct {
	conn    net.Conn
	signers []ssh.Signer
	names   []string
	problem string // why there are none: "no SSH agent…", "…cannot be reached"
}

func (r *resolved) openAgent(ctx context.Context) *agentKeys {
	if r.agentSocket == "" {
		return &agentKeys{problem: r.noAgent}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", r.agentSocket)
	if err != nil {
		return &agentKeys{problem: fmt.Sprintf("the SSH agent at %s cannot be reached (%v)", r.agentSocket, errors.Unwrap(err))}
	}
	a := &agentKeys{conn: conn}
	client := agent.NewClient(conn)
	list, err := client.List()
	if err == nil {
		a.signers, err = client.Signers()
	}
	if err != nil {
		conn.Close()
		return &agentKeys{problem: fmt.Sprintf("the SSH agent at %s failed (%v)", r.agentSocket, err)}
	}
	for i, s := range a.signers {
		name := "agent key"
		if i < len(list) && len(a.signers) == len(list) && list[i].Comment != "" {
			name = fmt.Sprintf("agent key %q", list[i].Comment)
		}
		a.names = append(a.names, name+" ("+keyLabel(s.PublicKey())+")")
	}
	if len(a.signers) == 0 {
		a.problem = "the SSH agent holds no keys"
	}
	r.log.Debug("ssh: asked the agent", "socket", r.agentSocket, "keys", len(a.signers))
	return a
}

// authKeys decides the keys to offer on one dial. It fails only when the
// one key the user chose cannot be used.
func (r *resolved) authKeys(ctx context.Context) (*authKeys, error) {
	plan := r.keys
	needAgent := plan.agent
	for _, f := range plan.files {
		if f.encrypted {
			needAgent = true
		}
	}
	var ag *agentKeys
	if needAgent {
		ag = r.openAgent(ctx)
	} else {
		ag = &agentKeys{}
	}
	out := &authKeys{notes: append([]string(nil), plan.notes...), close: func() {
		if ag.conn != nil {
			ag.conn.Close()
		}
	}}
	seen := map[string]bool{}
	var fileSigners, agentSigners []ssh.Signer
	var fileNames, agentNames []string
	usedAgent := map[int]bool{}
	for _, f := range plan.files {
		if f.signer != nil {
			fileSigners = append(fileSigners, f.signer)
			fileNames = append(fileNames, f.path+" ("+keyLabel(f.pub)+")")
			continue
		}
		// Encrypted: usable only through an agent that holds it.
		idx := -1
		if f.pub != nil {
			for i, s := range ag.signers {
				if bytes.Equal(s.PublicKey().Marshal(), f.pub.Marshal()) {
					idx = i
					break
				}
			}
		}
		if idx >= 0 {
			usedAgent[idx] = true
			fileSigners = append(fileSigners, ag.signers[idx])
			fileNames = append(fileNames, f.path+" via the SSH agent ("+keyLabel(f.pub)+")")
			continue
		}
		why := ag.problem
		switch {
		case why == "" || why == "the SSH agent holds no keys":
			why = "the SSH agent does not hold it"
		case f.pub == nil:
			why = "its public key is unknown (no " + f.path + ".pub), so no agent key can stand in for it"
		}
		if plan.only && len(plan.files) == 1 {
			out.close()
			return nil, &KeyError{Dest: r.dest, File: f.path, Encrypted: true, Err: errors.New(why)}
		}
		out.notes = append(out.notes, fmt.Sprintf("%s: protected by a passphrase and %s (ssh-add %s)", f.path, why, f.path))
	}
	if plan.agent {
		if ag.problem != "" {
			out.notes = append(out.notes, ag.problem)
		}
		for i, s := range ag.signers {
			if !usedAgent[i] {
				agentSigners = append(agentSigners, s)
				agentNames = append(agentNames, ag.names[i])
			}
		}
	}
	add := func(ss []ssh.Signer, names []string) {
		for i, s := range ss {
			k := string(s.PublicKey().Marshal())
			if seen[k] {
				continue
			}
			seen[k] = true
			out.signers = append(out.signers, s)
			out.offered = append(out.offered, names[i])
		}
	}
	if plan.mode == modeDefault {
		add(agentSigners, agentNames)
		add(fileSigners, fileNames)
	} else {
		add(fileSigners, fileNames)
		add(agentSigners, agentNames)
	}
	if len(out.signers) == 0 && plan.mode == modeDefault && len(plan.files) == 0 {
		out.notes = append(out.notes, fmt.Sprintf("no key file in %s (looked for %s)",
			filepath.Join(r.home, ".ssh"), strings.Join(defaultKeyNames, ", ")))
	}
	return out, nil
}
