package exedev

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/sshcheck"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
)

// Kind describes the exedev sandbox to the moat CLI (see sandbox.Kind).
// Its settings (sandbox.Env.Settings["exedev"]) are a Config, over which
// the MOAT_EXEDEV_* variables win (Config.WithEnv).
var Kind = sandbox.Kind{
	Name:    kindName,
	Summary: "exe.dev microVM",
	About:   "a fresh exe.dev VM; MOAT_EXEDEV_* variables override the config",
	Open: func(ctx context.Context, spec string, env sandbox.Env) (*sandbox.Opened, error) {
		return &sandbox.Opened{Provider: New(settings(env).WithEnv())}, nil
	},
	Doctor: doctor,
}

const kindName = "exedev"

// settings is the kind's Config in env, without the environment's.
func settings(env sandbox.Env) Config {
	c, _ := env.Settings[kindName].(Config)
	return c
}

// WithEnv returns c with what the MOAT_EXEDEV_* variables set
// (ConfigFromEnv) put over it.
func (c Config) WithEnv() Config {
	env := ConfigFromEnv()
	for _, o := range []struct {
		dst *string
		v   string
	}{
		{&c.Lobby, env.Lobby},
		{&c.IdentityFile, env.IdentityFile},
		{&c.KnownHostsFile, env.KnownHostsFile},
		{&c.Image, env.Image},
	} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	return c
}

// doctor checks, for an exedev sandbox, the SSH key moat offers to the
// lobby, the agent, known_hosts, and (unless offline) the lobby itself.
// For another kind it says these checks do not apply.
func doctor(ctx context.Context, spec string, env sandbox.Env) []sandbox.Check {
	var c sandbox.Checks
	if spec != kindName {
		why := "not used by this sandbox"
		if spec == "" {
			why = "the sandbox is not known until the config is fixed"
		}
		for _, name := range []string{"ssh key", "ssh agent", "known_hosts", "exe.dev"} {
			c.Add(sandbox.CheckSkip, name, why)
		}
		return c
	}
	file := settings(env)
	p := New(file.WithEnv())
	lobby := p.LobbySSHConfig()
	ex, exErr := sshx.Explain(ctx, lobby)

	keyFrom := ""
	switch {
	case os.Getenv("MOAT_EXEDEV_KEY") != "":
		keyFrom = "MOAT_EXEDEV_KEY"
	case file.IdentityFile != "":
		keyFrom = "identity_file in " + env.SettingsFile
	}
	keyOK := checkKey(&c, ex, exErr, keyFrom, p.LobbySSHCommand())
	sshcheck.Agent(&c, ex)
	sshcheck.KnownHosts(&c, ex, displayHost(lobby.Host))

	timeout := env.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	switch {
	case env.Offline:
		c.Add(sandbox.CheckSkip, "exe.dev", "--offline")
	case !keyOK:
		c.Add(sandbox.CheckSkip, "exe.dev", "no usable SSH key (see above)")
	default:
		checkLobby(ctx, &c, p, ex, timeout)
	}
	return c
}

// displayHost is host:port without the default port.
func displayHost(hostport string) string {
	if h, port, err := net.SplitHostPort(hostport); err == nil && port == "22" {
		return h
	}
	return hostport
}

// withIdentity turns "ssh exe.dev" into "ssh -i FILE exe.dev".
func withIdentity(sshCmd, file string) string {
	if file == "" {
		return sshCmd
	}
	return "ssh -i " + file + " " + strings.TrimPrefix(sshCmd, "ssh ")
}

// checkKey reports the key moat would offer and why. It returns whether
// there is one.
func checkKey(c *sandbox.Checks, ex sshx.Explanation, exErr error, keyFrom, lobbyCmd string) bool {
	why := ex.Reason
	if ex.Source == sshx.KeysExplicit && keyFrom != "" {
		why = keyFrom + ": " + why
	}
	if exErr != nil {
		var ke *sshx.KeyError
		if !errors.As(exErr, &ke) {
			c.Add(sandbox.CheckFail, "ssh key", exErr.Error())
			return false
		}
		more := []string{}
		if why != "" {
			more = append(more, "why: "+why)
		}
		switch {
		case ke.Encrypted:
			// The message says how (ssh-add).
		case ex.Source == sshx.KeysExplicit && keyFrom != "":
			more = append(more, "fix: point "+keyFrom+" at your exe.dev private key, or remove it to use ~/.ssh/id_exe")
		case ex.Source == sshx.KeysPreferred:
			more = append(more, "fix: "+ke.File+" must be a private key SSH can read (ssh-keygen -y -f "+ke.File+" checks it), or move it away")
		}
		c.Add(sandbox.CheckFail, "ssh key", exErr.Error(), more...)
		return false
	}
	var notes []string
	for _, n := range ex.Notes {
		notes = append(notes, "note: "+n)
	}
	if len(ex.Offered) == 0 {
		more := append([]string{"why: " + why}, notes...)
		more = append(more,
			"fix: create exe.dev's key: ssh-keygen -t ed25519 -f ~/.ssh/id_exe (moat then uses it alone)",
			"     then register it with exe.dev: "+withIdentity(lobbyCmd, "~/.ssh/id_exe")+" (signs you up),",
			"     or, from a key that is registered: "+lobbyCmd+" ssh-key add < ~/.ssh/id_exe.pub")
		c.Add(sandbox.CheckFail, "ssh key", "no SSH key to offer to exe.dev", more...)
		return false
	}
	if len(ex.Offered) == 1 {
		c.Add(sandbox.CheckOK, "ssh key", ex.Offered[0].Description, append([]string{"why: " + why}, notes...)...)
		return true
	}
	more := []string{}
	for i, k := range ex.Offered {
		more = append(more, fmt.Sprintf("%d. %s", i+1, k.Description))
	}
	more = append(more, "why: "+why)
	c.Add(sandbox.CheckOK, "ssh key", fmt.Sprintf("%d keys offered, in this order:", len(ex.Offered)), append(more, notes...)...)
	return true
}

// checkLobby: the lobby answers, and the key is registered.
func checkLobby(ctx context.Context, c *sandbox.Checks, p *Provider, ex sshx.Explanation, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	acct, err := p.Whoami(ctx)
	lobbyCmd := p.LobbySSHCommand()
	keyFile, keyLabel := "", ""
	if len(ex.Offered) > 0 {
		keyFile, keyLabel = ex.Offered[0].File, ex.Offered[0].Label
	}
	register := []string{
		"fix: register the key with exe.dev: " + withIdentity(lobbyCmd, keyFile) + " (sign-up, with e-mail verification),",
	}
	if keyFile != "" {
		register = append(register, "     or, from a key that is registered: "+lobbyCmd+" ssh-key add < "+keyFile+".pub")
	}
	var (
		ae *sshx.AuthError
		he *sshx.HostKeyChangedError
	)
	switch {
	case err == nil:
		detail := "answers; the key is registered"
		if acct.Email != "" {
			detail += " to " + acct.Email
		}
		if k, ok := acct.CurrentKey(); ok && k.Name != "" {
			detail += " (as " + k.Name + ")"
		}
		c.Add(sandbox.CheckOK, "exe.dev", detail)
	case errors.Is(err, ErrUnregistered):
		what := "this SSH key is not registered with an exe.dev account"
		if keyLabel != "" {
			what = "the SSH key " + keyLabel + " is not registered with an exe.dev account"
		}
		c.Add(sandbox.CheckFail, "exe.dev", what, register...)
	case errors.Is(err, ErrAccountLocked):
		c.Add(sandbox.CheckFail, "exe.dev", err.Error(), "fix: contact support@exe.dev with the trace id above")
	case errors.As(err, &ae):
		c.Add(sandbox.CheckFail, "exe.dev", "the lobby refused the key(s) offered: "+strings.Join(ae.Offered, ", "), register...)
	case errors.As(err, &he):
		c.Add(sandbox.CheckFail, "exe.dev", err.Error())
	case errors.Is(err, context.DeadlineExceeded) || sshx.IsConnectError(err):
		c.Add(sandbox.CheckFail, "exe.dev", fmt.Sprintf("no answer from the lobby within %s: %v", timeout, err),
			"fix: check your network; exe.dev drops bursts of new connections from one address, so wait a few minutes and retry (--offline skips this check)")
	default:
		c.Add(sandbox.CheckFail, "exe.dev", err.Error())
	}
}

// noForwarding are the ssh options that turn off agent, X11 and port
// forwarding.
const noForwarding = "-a -x -o ClearAllForwardings=yes"

// Access says how to reach the VM with OpenSSH and remove it
// (sandbox.Reachable). The agent ran in there and may have left a process
// behind: the ssh command never hands it the user's SSH agent, X display
// or a port forward, whatever ~/.ssh/config says. And VMs present the
// lobby's host key, so it is checked against the lobby's entry rather
// than trusted anew.
func (h *Handle) Access() sandbox.Access {
	q := shell.Quote
	cfg := h.p.cfg
	vm := h.vm
	dest := vm.SSHHost
	if vm.SSHUser != "" {
		dest = vm.SSHUser + "@" + dest
	}
	opts := noForwarding + " -o StrictHostKeyChecking=yes -o HostKeyAlias=" + q(lobbyHostKeyName(cfg.Lobby))
	if cfg.KnownHostsFile != "" {
		opts += " -o UserKnownHostsFile=" + q(cfg.KnownHostsFile)
	}
	if cfg.IdentityFile != "" {
		opts += " -i " + q(cfg.IdentityFile)
	}
	if vm.SSHPort != 0 && vm.SSHPort != 22 {
		opts += fmt.Sprintf(" -p %d", vm.SSHPort)
	}
	ssh := "ssh " + opts + " " + q(dest)
	return sandbox.Access{SSH: ssh, Reach: ssh, Remove: "moat sandbox rm " + q(vm.Name)}
}

// lobbyHostKeyName is the lobby's name in known_hosts: "exe.dev", or
// "[host]:port" on another port.
func lobbyHostKeyName(lobby string) string {
	if lobby == "" {
		lobby = DefaultLobby
	}
	if _, _, err := net.SplitHostPort(lobby); err != nil {
		lobby = net.JoinHostPort(lobby, "22")
	}
	return knownhosts.Normalize(lobby)
}
