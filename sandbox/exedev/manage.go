package exedev

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
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
