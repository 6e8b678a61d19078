package local

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/moatdev/moat/internal/hostview"
)

// Network selects a local sandbox's network under bwrap (Config.Network).
type Network string

const (
	// NetworkIsolated, the default, gives a sandbox a network namespace
	// of its own, shared by its commands, whose only way out is
	// slirp4netns, a user-space network stack (one per sandbox) that makes
	// the commands' connections from the host's network:
	// outbound TCP and UDP to other machines and DNS work as they do for
	// the host, while the host's loopback services (127.0.0.1 and ::1,
	// also as 10.0.2.2) and its abstract Unix sockets are out of reach.
	// A service that listens on a non-loopback address of the host is
	// reachable, as it is from the rest of the network. Without a working
	// slirp4netns (or, unless moat runs as root, nsenter, which puts
	// commands in the namespace), Create fails: it never falls back to
	// another network.
	NetworkIsolated Network = "isolated"
	// NetworkNone gives a sandbox a network namespace of its own, shared
	// by its commands, with nothing in it but a loopback interface.
	NetworkNone Network = "none"
	// NetworkHost shares the host's network namespace: every loopback
	// service and abstract Unix socket of the host (X11, D-Bus, ...) is
	// reachable. It must be asked for.
	NetworkHost Network = "host"
)

// ParseNetwork returns the Network named s: "isolated", "none" or "host".
func ParseNetwork(s string) (Network, error) {
	switch n := Network(s); n {
	case NetworkIsolated, NetworkNone, NetworkHost:
		return n, nil
	}
	return "", fmt.Errorf("unknown network %q: want isolated (own network, outbound through slirp4netns), none (no network) or host (this computer's network)", s)
}

// network is the Network asked for: Config.Network, or NetworkIsolated.
func (p *Provider) network() Network {
	if p.cfg.Network == "" {
		return NetworkIsolated
	}
	return p.cfg.Network
}

// hostMounts are the bwrap options that bind what a build needs, read-only,
// and hide the rest of the host.
func hostMounts() []string { return hostview.BwrapArgs(hostPath()) }

// Containment is the containment in effect for a provider's sandboxes.
type Containment struct {
	// Bwrap is the bubblewrap binary commands run in; "" when they run as
	// plain host processes.
	Bwrap string
	// Network is the commands' network: NetworkHost when Bwrap is "".
	Network Network
	// Stack is the slirp4netns binary of NetworkIsolated; "" otherwise.
	Stack string
}

// String describes c in a few words, e.g. "bwrap, network isolated
// (slirp4netns)" or "bwrap, network host (shares this computer's network)".
func (c Containment) String() string {
	if c.Bwrap == "" {
		return "no isolation: plain host processes, host network"
	}
	switch c.Network {
	case NetworkIsolated:
		return "bwrap, network isolated (" + filepath.Base(c.Stack) + ")"
	case NetworkHost:
		return "bwrap, network host (shares this computer's network)"
	}
	return "bwrap, network " + string(c.Network)
}

// Containment probes, as Create would, and returns the containment
// Create's sandboxes get, or the error Create would return.
func (p *Provider) Containment(ctx context.Context) (Containment, error) {
	if _, err := p.setup(ctx); err != nil {
		return Containment{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bwrap == "" {
		return Containment{Network: NetworkHost}, nil
	}
	return Containment{Bwrap: p.bwrap, Network: p.network(), Stack: p.stack}, nil
}
