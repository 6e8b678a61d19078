// Package sshhost makes sandboxes on any machine you can reach over SSH: a
// devbox, a workstation, a VM you already have.
//
// Each sandbox is a fresh directory on that host, <WorkDir>/moat-<hex>,
// with its sandbox.Record beside it (.moat-<hex>.json); every process its
// commands start carries sandbox.MarkerVar=moat-<hex>. Close removes both
// and kills the processes that carry the mark (on Linux hosts); so does
// RemoveLeftover, for a sandbox whose maker was killed (Leftovers). The
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
	"strings"
	"time"

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
	cfg  Config
	conn *sshx.Shared
}

// New returns a Provider for cfg. It does not connect until Create.
func New(cfg Config) *Provider {
	p := &Provider{cfg: cfg}
	p.conn = sshx.NewShared(func() sshx.Config {
		c := cfg.SSH
		c.Host, c.User, c.IdentityFile, c.KnownHostsFile = cfg.Addr, cfg.User, cfg.IdentityFile, cfg.KnownHostsFile
		if c.Logger == nil {
			c.Logger = cfg.Logger
		}
		return c
	})
	return p
}

// Name implements sandbox.Provider.
func (p *Provider) Name() string { return "sshhost" }

// Create implements sandbox.Provider: it makes <WorkDir>/moat-<random>/
// (mode 0700) on the host, which is the handle's WorkDir.
func (p *Provider) Create(ctx context.Context, opts sandbox.CreateOptions) (sandbox.Handle, error) {
	if p.cfg.Addr == "" {
		return nil, fmt.Errorf("sshhost: no host given: set Config.Addr to a host name, host:port or ~/.ssh/config alias")
	}
	client, err := p.conn.Acquire()
	if err != nil {
		return nil, fmt.Errorf("sshhost: %w", err)
	}
	if err := client.Connect(ctx); err != nil {
		p.conn.Release()
		return nil, fmt.Errorf("sshhost: %w", err)
	}
	base := p.cfg.WorkDir
	if base == "" {
		base = "~/.moat/sandboxes"
	}
	id := make([]byte, 6)
	rand.Read(id)
	name := "moat-" + hex.EncodeToString(id)
	dir := strings.TrimSuffix(base, "/") + "/" + name

	// The record goes beside the directory in the same command.
	rec := sandbox.NewRecord(opts.Labels)
	workDir, err := sshhandle.MakeDirAnd(ctx, client, dir, true, writeRecordScript, map[string]string{"MOAT_REC": string(rec.Marshal())})
	if err != nil {
		// The directory (and its record) may exist if ctx ended half way:
		// remove them.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		sshhandle.RemoveDir(rctx, client, dir)
		sshhandle.RemoveDir(rctx, client, recordPath(dir))
		cancel()
		p.conn.Release()
		return nil, fmt.Errorf("sshhost %s: %w", client.Addr(), err)
	}
	cleanup := func(ctx context.Context, h *sshhandle.Handle) error {
		defer p.conn.Release()
		return removeSandbox(ctx, client, h, workDir)
	}
	dest := "ssh://" + p.cfg.Addr
	if p.cfg.User != "" {
		dest = "ssh://" + p.cfg.User + "@" + p.cfg.Addr
	}
	return &Handle{Handle: sshhandle.NewMarked(client, workDir, name, opts.Env, cleanup), client: client, rec: rec, dest: dest}, nil
}

// Handle is a sandbox on an SSH host.
type Handle struct {
	*sshhandle.Handle
	client *sshx.Client
	rec    sandbox.Record
	dest   string // ssh://[user@]host[:port]
}

var _ sandbox.Keeper = (*Handle)(nil)

// MarkKept implements sandbox.Keeper: the sandbox's record says it was
// kept on purpose.
func (h *Handle) MarkKept(ctx context.Context) error {
	r := h.rec
	r.Kept = true
	if err := writeRecord(ctx, h.client, h.WorkDir(), r); err != nil {
		return fmt.Errorf("sshhost %s: %w", h.client.Addr(), err)
	}
	return nil
}

// removeSandbox kills what the sandbox's commands left running (the host
// outlives the sandbox: a dev server started with nohup goes too), then
// removes its directory and its record.
func removeSandbox(ctx context.Context, client *sshx.Client, h *sshhandle.Handle, workDir string) error {
	killErr := h.KillAll(ctx)
	if err := sshhandle.RemoveDir(ctx, client, workDir); err != nil {
		return fmt.Errorf("sshhost %s: %w", client.Addr(), err)
	}
	if err := sshhandle.RemoveDir(ctx, client, recordPath(workDir)); err != nil {
		return fmt.Errorf("sshhost %s: %w", client.Addr(), err)
	}
	if killErr != nil {
		return fmt.Errorf("sshhost %s: %w", client.Addr(), killErr)
	}
	return nil
}
