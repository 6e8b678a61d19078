package local

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// Network selects a local sandbox's network (Config.Network).
type Network string

const (
	// NetworkIsolated gives the sandbox its own network namespace; host
	// loopback services and abstract Unix sockets are unreachable. It has
	// no outbound network yet (a user-space stack, slirp4netns or pasta, is
	// not wired in), so it is not the default: an agent needs its API.
	NetworkIsolated Network = "isolated"
	// NetworkNone gives the sandbox its own, empty network namespace.
	NetworkNone Network = "none"
	// NetworkHost shares the host's network namespace. It is the default
	// until NetworkIsolated has outbound connectivity.
	NetworkHost Network = "host"
)

var isolatedWarned atomic.Bool

func (p *Provider) network() Network {
	switch p.cfg.Network {
	case NetworkIsolated, NetworkNone:
		return p.cfg.Network
	}
	return NetworkHost
}

// secretPaths are hidden inside the sandbox where they exist.
var secretPaths = []string{
	"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
	"/etc/sudoers", "/etc/sudoers.d", "/etc/ssl/private", "/etc/ssh",
}

// hostMounts are the bwrap options that bind what a build needs, read-only,
// and hide the rest of the host.
func hostMounts() []string {
	var a []string
	for _, d := range []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"} {
		if fi, err := os.Lstat(d); err == nil {
			if fi.Mode()&os.ModeSymlink != 0 {
				if t, err := os.Readlink(d); err == nil {
					a = append(a, "--symlink", t, d)
				}
				continue
			}
			a = append(a, "--ro-bind", d, d)
		}
	}
	for _, s := range secretPaths {
		fi, err := os.Lstat(s)
		switch {
		case err != nil:
		case fi.IsDir():
			a = append(a, "--tmpfs", s)
		default:
			a = append(a, "--ro-bind", "/dev/null", s)
		}
	}
	// Toolchains on PATH outside the system directories.
	for _, d := range filepath.SplitList(hostPath()) {
		if !filepath.IsAbs(d) || underSystem(d) {
			continue
		}
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			a = append(a, "--ro-bind", d, d)
		}
	}
	return a
}

func underSystem(d string) bool {
	for _, s := range []string{"/usr", "/bin", "/sbin", "/lib", "/opt", "/etc"} {
		if d == s || strings.HasPrefix(d, s+"/") {
			return true
		}
	}
	return false
}

// Containment describes the containment in effect for this provider's
// sandboxes, for moat doctor and the status line.
func (p *Provider) Containment() string {
	if p.bwrap == "" && p.probed {
		return "none: commands run as plain host processes"
	}
	return "bwrap: system directories read-only, host home, /run, /root and secrets hidden; network " + string(p.network())
}
