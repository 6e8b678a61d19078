package exedev

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/sshx"
)

// VMInfo is one VM as the lobby's `ls --json` shows it.
type VMInfo struct {
	Name      string
	Status    string // "running" is the only status confirmed so far
	SSHHost   string
	Image     string
	Tags      []string
	CreatedAt time.Time // zero when the lobby did not say
}

// HasTag reports whether the VM carries tag.
func (v VMInfo) HasTag(tag string) bool { return slices.Contains(v.Tags, tag) }

// List returns the account's VMs that carry the moat tag, oldest first.
func (p *Provider) List(ctx context.Context) ([]VMInfo, error) {
	all, err := p.ListAll(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(v VMInfo) bool { return !v.HasTag(Tag) }), nil
}

// ListAll returns every VM on the account, oldest first.
func (p *Provider) ListAll(ctx context.Context) ([]VMInfo, error) {
	lobby, err := p.acquireLobby()
	if err != nil {
		return nil, err
	}
	defer p.releaseLobby()
	payload, err := runLobby(ctx, lobby, "ls", "--json")
	if err != nil {
		// Old servers answered an empty account in text.
		var le *LobbyError
		if errors.As(err, &le) && strings.Contains(le.Message, "No VMs found") {
			return nil, nil
		}
		return nil, err
	}
	return parseList(payload)
}

func parseList(payload []byte) ([]VMInfo, error) {
	if len(payload) == 0 {
		return nil, nil
	}
	var v struct {
		VMs []struct {
			Name      string   `json:"vm_name"`
			Status    string   `json:"status"`
			SSHHost   string   `json:"ssh_host"`
			SSHDest   string   `json:"ssh_dest"`
			Image     string   `json:"image"`
			Tags      []string `json:"tags"`
			CreatedAt string   `json:"created_at"`
		} `json:"vms"`
	}
	if err := json.Unmarshal(payload, &v); err != nil {
		return nil, fmt.Errorf("exe.dev ls: unreadable answer %q: %w", truncate(string(payload), 200), err)
	}
	out := make([]VMInfo, 0, len(v.VMs))
	for _, vm := range v.VMs {
		info := VMInfo{Name: vm.Name, Status: vm.Status, SSHHost: vm.SSHHost, Image: vm.Image, Tags: vm.Tags}
		if info.SSHHost == "" {
			info.SSHHost = vm.SSHDest
		}
		if t, err := time.Parse(time.RFC3339, vm.CreatedAt); err == nil {
			info.CreatedAt = t
		}
		out = append(out, info)
	}
	slices.SortStableFunc(out, func(a, b VMInfo) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Remove deletes the named VMs. A VM that is already gone counts as removed.
func (p *Provider) Remove(ctx context.Context, names ...string) error {
	lobby, err := p.acquireLobby()
	if err != nil {
		return err
	}
	defer p.releaseLobby()
	var errs []error
	for _, name := range names {
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
		errs = append(errs, p.removeVM(lobby, name))
	}
	return errors.Join(errs...)
}

// Account is the exe.dev account the SSH key belongs to, as the lobby's
// `whoami --json` shows it.
type Account struct {
	Email string
	Keys  []AccountKey
}

// AccountKey is one SSH key registered with the account.
type AccountKey struct {
	Name        string // e.g. "key-1"
	PublicKey   string // authorized_keys format
	Fingerprint string // "SHA256:…"
	Current     bool   // the key this connection used
}

// CurrentKey returns the key the connection used, if the lobby said.
func (a Account) CurrentKey() (AccountKey, bool) {
	for _, k := range a.Keys {
		if k.Current {
			return k, true
		}
	}
	return AccountKey{}, false
}

// Whoami asks the lobby which account the SSH key belongs to. A key that is
// not registered gives an error matching ErrUnregistered.
func (p *Provider) Whoami(ctx context.Context) (Account, error) {
	lobby, err := p.acquireLobby()
	if err != nil {
		return Account{}, err
	}
	defer p.releaseLobby()
	payload, err := runLobby(ctx, lobby, "whoami", "--json")
	if err != nil {
		return Account{}, err
	}
	return parseWhoami(payload)
}

func parseWhoami(payload []byte) (Account, error) {
	var v struct {
		Email   string `json:"email"`
		SSHKeys []struct {
			Name        string `json:"name"`
			PublicKey   string `json:"public_key"`
			Fingerprint string `json:"fingerprint"`
			Current     bool   `json:"current"`
		} `json:"ssh_keys"`
	}
	if err := json.Unmarshal(payload, &v); err != nil {
		return Account{}, fmt.Errorf("exe.dev whoami: unreadable answer %q: %w", truncate(string(payload), 200), err)
	}
	a := Account{Email: v.Email}
	for _, k := range v.SSHKeys {
		a.Keys = append(a.Keys, AccountKey{Name: k.Name, PublicKey: k.PublicKey, Fingerprint: k.Fingerprint, Current: k.Current})
	}
	return a, nil
}

// Hold keeps one lobby connection for a series of calls (List, Remove,
// Whoami) until release is called; without it each call makes its own
// connection, and exe.dev drops bursts of new connections. It does not
// dial; it fails only when the SSH setup cannot be used (e.g. a key file
// that cannot be read).
func (p *Provider) Hold() (release func(), err error) {
	if _, err := p.acquireLobby(); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(p.releaseLobby) }, nil
}

// LobbySSHConfig is the SSH configuration the provider uses for the lobby:
// host, user, keys (with ~/.ssh/id_exe preferred), known_hosts. For
// diagnostics (sshx.Explain).
func (p *Provider) LobbySSHConfig() sshx.Config {
	c := p.sshConfig()
	c.Host, c.User = p.cfg.Lobby, p.cfg.User
	return c
}

// LobbySSHCommand is how a person reaches the provider's lobby with ssh,
// e.g. "ssh exe.dev" or "ssh -p 2222 127.0.0.1".
func (p *Provider) LobbySSHCommand() string { return p.lobbySSHCommand() }

// KeptTag marks a VM moat left running because it holds an agent's work
// that could not be brought out; moat sandbox gc leaves such VMs alone.
const KeptTag = "moat-kept"

// MarkKept tags the handle's VM with KeptTag, so that garbage collection
// spares it. The handle stays open.
func (h *Handle) MarkKept(ctx context.Context) error {
	lobby, err := h.p.acquireLobby()
	if err != nil {
		return err
	}
	defer h.p.releaseLobby()
	stdout, stderr, code, _, err := execLobby(ctx, lobby, "tag "+shell.Quote(h.vm.Name)+" "+KeptTag)
	if err != nil {
		return fmt.Errorf("exe.dev tag: %w", err)
	}
	if code != 0 {
		msg := strings.TrimSpace(string(stderr))
		if msg == "" {
			msg = strings.TrimSpace(string(stdout))
		}
		return lobbyError("tag", msg, code)
	}
	return nil
}
