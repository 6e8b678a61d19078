// Package sshhost makes sandboxes on any machine you can reach over SSH: a
// devbox, a workstation, a VM you already have.
//
// Each sandbox is a fresh directory on that host, removed by Close. The
// host itself is the isolation boundary: commands run as the SSH user and
// can touch whatever that user can, so point it at a machine (or account)
// you are happy to let an agent use.
package sshhost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"

	"github.com/moatdev/moat/internal/sshhandle"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
)

// Config says which host to use and how to log in. Empty fields fall back
// to ~/.ssh/config and OpenSSH's defaults.
type Config struct {
	// Addr is the host: a name, an alias from ~/.ssh/config, or host:port.
	Addr string
	// User is the login name.
	User string
	// IdentityFile is a private key to use alone.
	IdentityFile string
	// KnownHostsFile is checked with accept-new semantics; default
	// ~/.ssh/known_hosts.
	KnownHostsFile string
	// WorkDir is the directory on the host under which each sandbox gets a
	// fresh subdirectory; "~/" means the login user's home. Default
	// "~/.moat/sandboxes".
	WorkDir string
	// SSH overrides further transport settings (agent socket, ssh_config
	// file, timeouts, logger). Its Host, User, IdentityFile and
	// KnownHostsFile are replaced by the fields above.
	SSH sshx.Config
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

// Provider makes sandboxes on one SSH host. All sandboxes of a Provider
// share one connection (more only when the server limits sessions), which
// is closed when the last sandbox is.
type Provider struct {
	cfg Config

	mu     sync.Mutex
	client *sshx.Client
	refs   int
}

// New returns a Provider for cfg. It does not connect until Create.
func New(cfg Config) *Provider { return &Provider{cfg: cfg} }

// Name implements sandbox.Provider.
func (p *Provider) Name() string { return "sshhost" }

func (p *Provider) acquire() (*sshx.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		c := p.cfg.SSH
		c.Host, c.User, c.IdentityFile, c.KnownHostsFile = p.cfg.Addr, p.cfg.User, p.cfg.IdentityFile, p.cfg.KnownHostsFile
		if c.Logger == nil {
			c.Logger = p.cfg.Logger
		}
		client, err := sshx.New(c)
		if err != nil {
			return nil, err
		}
		p.client = client
	}
	p.refs++
	return p.client, nil
}

func (p *Provider) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refs--
	if p.refs == 0 && p.client != nil {
		p.client.Close()
		p.client = nil
	}
}

// Create implements sandbox.Provider: it makes <WorkDir>/moat-<random>/ on
// the host and returns a handle rooted there.
func (p *Provider) Create(ctx context.Context, opts sandbox.CreateOptions) (sandbox.Handle, error) {
	if p.cfg.Addr == "" {
		return nil, fmt.Errorf("sshhost: no host given: set Config.Addr to a host name, host:port or ~/.ssh/config alias")
	}
	client, err := p.acquire()
	if err != nil {
		return nil, fmt.Errorf("sshhost: %w", err)
	}
	if err := client.Connect(ctx); err != nil {
		p.release()
		return nil, fmt.Errorf("sshhost: %w", err)
	}
	base := p.cfg.WorkDir
	if base == "" {
		base = "~/.moat/sandboxes"
	}
	id := make([]byte, 6)
	rand.Read(id)
	name := "moat-" + hex.EncodeToString(id)

	// The directory is made by a setup handle that knows no WorkDir yet;
	// "~" is expanded by the host's shell from $HOME.
	setup := sshhandle.New(client, "/", nil, nil)
	res, err := setup.Run(ctx, `set -e
case "$MOAT_BASE" in "~") MOAT_BASE=$HOME ;; "~/"*) MOAT_BASE=$HOME/${MOAT_BASE#"~/"} ;; esac
case "$MOAT_BASE" in /*) ;; *) MOAT_BASE=$HOME/$MOAT_BASE ;; esac
mkdir -p -- "$MOAT_BASE/$MOAT_NAME/workspace"
chmod 700 -- "$MOAT_BASE/$MOAT_NAME"
cd -- "$MOAT_BASE/$MOAT_NAME/workspace" && pwd -P`, sandbox.ExecOptions{Env: map[string]string{"MOAT_BASE": base, "MOAT_NAME": name}})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("could not make the sandbox directory under %s: %s", base, strings.TrimSpace(res.Stderr))
	}
	workDir := strings.TrimSpace(res.Stdout)
	if err == nil && !path.IsAbs(workDir) {
		err = fmt.Errorf("could not make the sandbox directory under %s: the host printed %q", base, workDir)
	}
	if err != nil {
		p.release()
		return nil, fmt.Errorf("sshhost %s: %w", client.Addr(), err)
	}
	sandboxDir := path.Dir(workDir)
	var once sync.Once
	cleanup := func(ctx context.Context, h *sshhandle.Handle) error {
		var err error
		once.Do(func() {
			defer p.release()
			res, rerr := h.Run(ctx, `chmod -R u+w -- "$MOAT_DIR" 2>/dev/null; rm -rf -- "$MOAT_DIR" 2>/dev/null || sudo -n rm -rf -- "$MOAT_DIR"`, sandbox.ExecOptions{Dir: "/", Env: map[string]string{"MOAT_DIR": sandboxDir}})
			switch {
			case rerr != nil:
				err = fmt.Errorf("sshhost: remove %s on %s: %w", sandboxDir, client.Addr(), rerr)
			case res.ExitCode != 0:
				err = fmt.Errorf("sshhost: remove %s on %s: %s", sandboxDir, client.Addr(), strings.TrimSpace(res.Stderr))
			}
		})
		return err
	}
	return sshhandle.New(client, workDir, opts.Env, cleanup), nil
}
