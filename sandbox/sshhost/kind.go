package sshhost

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/sshcheck"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
)

const kindName = "ssh"

// Kind describes the SSH host sandbox to the moat CLI (see sandbox.Kind):
// specs are ssh://[user@]host[:port], and each sandbox is a fresh
// directory on that host.
var Kind = sandbox.Kind{
	Name:    kindName,
	URL:     true,
	Spec:    "ssh://[user@]host[:port]",
	Summary: "any SSH host",
	About:   "a fresh directory on any SSH host",
	// A repository's config must not send it, and the user's SSH
	// keys, to a host of its choosing.
	ActsOnHost: "sends your repository to this SSH host, signing in with your SSH keys",
	Parse: func(spec string) error {
		_, _, err := ParseSpec(spec)
		return err
	},
	Open: func(ctx context.Context, spec string, env sandbox.Env) (*sandbox.Opened, error) {
		user, hostPort, err := ParseSpec(spec)
		if err != nil {
			return nil, err
		}
		return &sandbox.Opened{Provider: New(Config{Addr: hostPort, User: user, Logger: env.Logger})}, nil
	},
	Leftovers: func(spec string, env sandbox.Env) sandbox.LeftoverFinder {
		user, hostPort, err := ParseSpec(spec)
		if err != nil {
			return nil
		}
		return New(Config{Addr: hostPort, User: user, Logger: env.Logger})
	},
	Doctor: doctor,
}

// ParseSpec splits an ssh://[user@]host[:port] sandbox spec into its user
// ("" when absent) and host[:port], or says what is wrong with it.
func ParseSpec(s string) (user, hostPort string, err error) {
	rest, ok := strings.CutPrefix(s, "ssh://")
	if !ok {
		return "", "", errors.New("want ssh://[user@]host[:port]")
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		user, rest = rest[:i], rest[i+1:]
		if user == "" {
			return "", "", errors.New(`empty user before "@": want ssh://[user@]host[:port]`)
		}
	}
	host, port := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i:], "]") {
		host, port = rest[:i], rest[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", "", errors.New("the port is not a number from 1 to 65535: want ssh://[user@]host[:port]")
		}
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	switch {
	case host == "":
		return "", "", errors.New("no host: want ssh://[user@]host[:port]")
	case strings.ContainsAny(host, "/ \t\n[]"):
		return "", "", errors.New("the host has a character a host name cannot have: want ssh://[user@]host[:port], without a path")
	}
	return user, rest, nil
}

// doctor checks the key moat offers to an ssh:// sandbox host, the
// agent and known_hosts; for another kind it has nothing to say.
func doctor(ctx context.Context, spec string, env sandbox.Env) []sandbox.Check {
	if !strings.HasPrefix(spec, kindName+"://") {
		return nil
	}
	var c sandbox.Checks
	user, hostPort, err := ParseSpec(spec)
	if err != nil {
		c.Add(sandbox.CheckFail, "sandbox", fmt.Sprintf("sandbox %q: %v", spec, err))
		return c
	}
	ex, err := sshx.Explain(ctx, sshx.Config{Host: hostPort, User: user})
	if err != nil {
		c.Add(sandbox.CheckFail, "ssh key", err.Error())
	} else if len(ex.Offered) == 0 {
		more := []string{"why: " + ex.Reason}
		for _, n := range ex.Notes {
			more = append(more, "note: "+n)
		}
		more = append(more, "fix: create a key (ssh-keygen -t ed25519) and authorize it on "+hostPort+" (ssh-copy-id), or name one with IdentityFile in ~/.ssh/config")
		c.Add(sandbox.CheckFail, "ssh key", "no SSH key to offer to "+ex.Dest, more...)
	} else {
		descs := make([]string, len(ex.Offered))
		for i, k := range ex.Offered {
			descs[i] = k.Description
		}
		c.Add(sandbox.CheckOK, "ssh key", strings.Join(descs, ", "), "why: "+ex.Reason)
	}
	if ex.Dest != "" {
		sshcheck.Agent(&c, ex)
		sshcheck.KnownHosts(&c, ex, hostPort)
	}
	c.Add(sandbox.CheckSkip, "exe.dev", "the sandbox is an SSH host, not exe.dev")
	return c
}

var _ sandbox.Reachable = (*Handle)(nil)

// noForwarding are the ssh options that turn off agent, X11 and port
// forwarding: the agent may have left a process behind on the host.
const noForwarding = "-a -x -o ClearAllForwardings=yes"

// Access says how to reach the sandbox's directory with OpenSSH, which
// takes the ssh:// form as it is, port included, and how to remove it
// (sandbox.Reachable).
func (h *Handle) Access() sandbox.Access {
	q := shell.Quote
	ssh := "ssh " + noForwarding + " " + q(h.dest)
	return sandbox.Access{SSH: ssh, Reach: ssh + ", then cd " + q(h.WorkDir()), Remove: ssh + " " + q("rm -rf -- "+q(h.WorkDir()))}
}
