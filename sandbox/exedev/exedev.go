package exedev

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/moatdev/moat/internal/execout"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/sshhandle"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
)

// sharedLimiter spaces the new connections of every Provider in the
// process: exe.dev silently drops bursts of connections from one address,
// to the lobby and to VMs alike (reference/exedev.md §4.1).
var sharedLimiter = sshx.NewDialLimiter(time.Second, 3)

// Provider makes exe.dev VMs. It keeps one SSH connection to the lobby while
// any of its sandboxes is alive (or being created), and one per VM.
type Provider struct {
	cfg     Config
	log     *slog.Logger
	limiter *sshx.DialLimiter
	lobby   *sshx.Shared
}

// New returns a Provider for cfg. It does not connect until Create.
func New(cfg Config) *Provider {
	if cfg.Lobby == "" {
		cfg.Lobby = DefaultLobby
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 90 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limiter := cfg.SSH.Limiter
	if limiter == nil {
		limiter = sharedLimiter
	}
	p := &Provider{cfg: cfg, log: log, limiter: limiter}
	p.lobby = sshx.NewShared(func() sshx.Config {
		c := p.sshConfig()
		c.Host, c.User = p.cfg.Lobby, p.cfg.User
		return c
	})
	return p
}

// Name implements sandbox.Provider.
func (p *Provider) Name() string { return "exedev" }

// sshConfig is the transport configuration shared by the lobby and VMs.
func (p *Provider) sshConfig() sshx.Config {
	c := p.cfg.SSH
	c.IdentityFile = p.cfg.IdentityFile
	c.KnownHostsFile = p.cfg.KnownHostsFile
	c.Limiter = p.limiter
	if c.Logger == nil {
		c.Logger = p.log
	}
	if c.PreferredIdentityFile == "" {
		// exe.dev's recommended key, used alone when it exists.
		home := c.HomeDir
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		if home != "" {
			c.PreferredIdentityFile = filepath.Join(home, ".ssh", "id_exe")
		}
	}
	return c
}

func (p *Provider) acquireLobby() (*sshx.Client, error) {
	c, err := p.lobby.Acquire()
	if err != nil {
		return nil, fmt.Errorf("exe.dev lobby %s: %w", p.cfg.Lobby, err)
	}
	return c, nil
}

func (p *Provider) releaseLobby() { p.lobby.Release() }

// Create implements sandbox.Provider: `new` a VM, wait until it runs
// commands, make its work directory. A VM that fails any of this, or whose
// creation is interrupted, is deleted before Create returns.
func (p *Provider) Create(ctx context.Context, opts sandbox.CreateOptions) (sandbox.Handle, error) {
	env, err := shell.MergeEnv(p.cfg.Env, opts.Env)
	if err != nil {
		return nil, fmt.Errorf("exedev: %w", err)
	}
	lobby, err := p.acquireLobby()
	if err != nil {
		return nil, err
	}
	released := false
	release := func() {
		if !released {
			released = true
			p.releaseLobby()
		}
	}
	defer release()
	start := time.Now()
	vm, err := p.newVM(ctx, lobby)
	if err != nil {
		return nil, err
	}
	p.log.Debug("exe.dev VM created", "vm", vm.Name, "host", vm.SSHHost, "port", vm.SSHPort, "took", time.Since(start))

	vmClient, workDir, err := p.connectVM(ctx, lobby, vm, opts.Labels)
	if err != nil {
		if rmErr := p.removeVM(lobby, vm.Name); rmErr != nil {
			return nil, fmt.Errorf("%w; and deleting the VM failed too: %v", err, rmErr)
		}
		return nil, err
	}
	p.log.Debug("exe.dev VM ready", "vm", vm.Name, "workdir", workDir, "took", time.Since(start))
	released = true // the handle owns the lobby reference now
	cleanup := func(ctx context.Context, h *sshhandle.Handle) error {
		vmClient.Close()
		defer p.releaseLobby()
		return p.removeVM(lobby, vm.Name)
	}
	return &Handle{p: p, h: sshhandle.New(vmSessions{vmClient, vm.Name}, workDir, env, cleanup), vm: vm}, nil
}

// labelsFile is where, in the VM's home, Create writes the sandbox's
// labels as JSON (exedevtest.LabelsFile reads it).
const labelsFile = ".moat/labels.json"

// Handle is a live exe.dev VM.
type Handle struct {
	p  *Provider
	h  *sshhandle.Handle
	vm VM
}

var (
	_ sandbox.Handle = (*Handle)(nil)
	_ sandbox.Keeper = (*Handle)(nil)
	_ sandbox.Named  = (*Handle)(nil)
)

// VM tells what exe.dev said about the handle's VM.
func (h *Handle) VM() VM { return h.vm }

// String is the VM's name.
func (h *Handle) String() string { return h.vm.Name }

// SandboxName is the VM's name (sandbox.Named).
func (h *Handle) SandboxName() string { return h.vm.Name }

// WorkDir implements sandbox.Handle.
func (h *Handle) WorkDir() string { return h.h.WorkDir() }

// Exec implements sandbox.Handle.
func (h *Handle) Exec(ctx context.Context, cmd string, opts sandbox.ExecOptions) (sandbox.ExecResult, error) {
	return h.h.Exec(ctx, cmd, opts)
}

// CopyIn implements sandbox.Handle.
func (h *Handle) CopyIn(ctx context.Context, hostPath, sandboxPath string) error {
	return h.h.CopyIn(ctx, hostPath, sandboxPath)
}

// CopyOut implements sandbox.Handle.
func (h *Handle) CopyOut(ctx context.Context, sandboxPath, hostPath string) error {
	return h.h.CopyOut(ctx, sandboxPath, hostPath)
}

// Close implements sandbox.Handle: it deletes the VM.
func (h *Handle) Close(ctx context.Context) error { return h.h.Close(ctx) }

// newVM runs `new` with a fresh random name, retrying once or twice when the
// name is taken (names are global across exe.dev).
//
// A `new` that was sent is never abandoned: when ctx ends, moat still waits
// (bounded) for the lobby's answer and deletes the VM it made, since a VM
// created after the caller gave up would leak. When the outcome stays
// unknown, the name is deleted anyway.
func (p *Provider) newVM(ctx context.Context, lobby *sshx.Client) (VM, error) {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return VM{}, fmt.Errorf("exe.dev new: %w", err)
		}
		name := newName()
		args := []string{"new", "--json", "--no-email", "--name=" + name, "--tag=" + Tag}
		for _, t := range p.cfg.Tags {
			if t != Tag {
				args = append(args, "--tag="+t)
			}
		}
		if p.cfg.Image != "" {
			args = append(args, "--image="+p.cfg.Image)
		}
		if p.cfg.CPU > 0 {
			args = append(args, "--cpu="+strconv.Itoa(p.cfg.CPU))
		}
		if p.cfg.Memory != "" {
			args = append(args, "--memory="+p.cfg.Memory)
		}
		if p.cfg.Disk != "" {
			args = append(args, "--disk="+p.cfg.Disk)
		}
		type answer struct {
			payload json.RawMessage
			err     error
			sent    bool
		}
		done := make(chan answer, 1)
		go func() {
			nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
			defer cancel()
			payload, sent, err := runLobbySent(nctx, lobby, args...)
			done <- answer{payload, err, sent}
		}()
		var a answer
		select {
		case a = <-done:
		case <-ctx.Done():
			a = <-done // let `new` finish: what it made must be deleted
			if a.err == nil || a.sent {
				if rmErr := p.removeVM(lobby, name); rmErr != nil {
					return VM{}, fmt.Errorf("exe.dev new: %w; and deleting VM %s failed: %v", ctx.Err(), name, rmErr)
				}
			}
			return VM{}, fmt.Errorf("exe.dev new: %w", ctx.Err())
		}
		if a.err != nil {
			var le *LobbyError
			if errors.As(a.err, &le) && provesNothingMade(le) {
				if errors.Is(a.err, ErrNameTaken) && attempt < 3 {
					continue
				}
				return VM{}, a.err
			}
			if !a.sent {
				return VM{}, a.err // the command never reached the lobby
			}
			// The lobby may have made the VM: delete it by name.
			if rmErr := p.removeVM(lobby, name); rmErr != nil {
				return VM{}, fmt.Errorf("%w; VM %s may exist and deleting it failed: %v", a.err, name, rmErr)
			}
			return VM{}, a.err
		}
		vm, err := parseVM(a.payload)
		if err == nil && vm.Name != name {
			// Never seen with a server that honours --name.
			err = fmt.Errorf("exe.dev new: asked for VM %s, the server made %s", name, vm.Name)
			if rmErr := p.removeVM(lobby, vm.Name); rmErr != nil {
				err = fmt.Errorf("%w; deleting %s failed: %v", err, vm.Name, rmErr)
			}
		}
		if err != nil {
			if rmErr := p.removeVM(lobby, name); rmErr != nil {
				err = fmt.Errorf("%w; deleting %s failed: %v", err, name, rmErr)
			}
			return VM{}, err
		}
		return vm, nil
	}
}

// provesNothingMade reports whether a `new` error means no VM exists.
func provesNothingMade(le *LobbyError) bool {
	for _, k := range []error{ErrQuota, ErrNameTaken, ErrInvalidName, ErrUnregistered, ErrAccountLocked} {
		if le.Kind == k {
			return true
		}
	}
	return false
}

// connectVM waits until the VM runs commands, then makes the work dir.
//
// Readiness is polled first through the lobby (`ssh <vm> true` on the open
// lobby connection): polling costs no new connection, so it may be fast
// without tripping exe.dev's connection-burst limit. Then the VM is dialled
// directly, retrying only connection errors (DNS may lag); authentication
// and host key failures are final.
func (p *Provider) connectVM(ctx context.Context, lobby *sshx.Client, vm VM, labels map[string]string) (*sshx.Client, string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ReadyTimeout)
	defer cancel()
	lobbyKey := lobby.HostKey()
	if lobbyKey == nil {
		return nil, "", errors.New("exe.dev: internal error: no lobby host key after a lobby command")
	}
	c := p.sshConfig()
	c.Host, c.Port, c.User = vm.SSHHost, vm.SSHPort, vm.SSHUser
	if c.User == "" {
		c.User = lobby.User() // any user works with name routing
	}
	c.HostKeyCallback = pinnedHostKey(lobbyKey)
	c.HostKeys = []ssh.PublicKey{lobbyKey}
	client, err := sshx.New(c)
	if err != nil {
		return nil, "", fmt.Errorf("exe.dev VM %s: %w", vm.Name, err)
	}
	fail := func(err error) (*sshx.Client, string, error) {
		client.Close()
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not ready after %s: %w", p.cfg.ReadyTimeout, err)
		}
		return nil, "", fmt.Errorf("exe.dev VM %s: %w", vm.Name, err)
	}

	if said := p.pollThroughLobby(ctx, lobby, vm.Name); said != "" && ctx.Err() != nil {
		return fail(fmt.Errorf("%w (exe.dev last said: %s)", ctx.Err(), truncate(said, 300)))
	}

	wait := 50 * time.Millisecond
	var lastErr error
	for {
		err := client.Connect(ctx)
		if err == nil {
			break
		}
		if !sshx.IsConnectError(err) || ctx.Err() != nil {
			if lastErr != nil && ctx.Err() != nil {
				err = fmt.Errorf("%w (last connection error: %v)", err, lastErr)
			}
			return fail(err)
		}
		lastErr = err
		p.log.Debug("exe.dev VM not reachable yet", "vm", vm.Name, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fail(fmt.Errorf("%w (last connection error: %v)", ctx.Err(), lastErr))
		}
		wait = min(wait*3/2, time.Second)
	}

	dir := p.cfg.WorkDir
	if dir == "" {
		dir = "~/workspace"
	}
	// With the work directory, in the same command, the labels: where a
	// leftover VM says which run made it (moat sandbox ls). Best effort.
	var then string
	var env map[string]string
	if len(labels) > 0 {
		b, _ := json.Marshal(labels)
		then = `mkdir -p ~/.moat && umask 077 && printf '%s' "$MOAT_LABELS" > ~/` + labelsFile + ` || true`
		env = map[string]string{"MOAT_LABELS": string(b)}
	}
	workDir, err := sshhandle.MakeDirAnd(ctx, client, dir, false, then, env)
	if err != nil {
		return fail(err)
	}
	return client, workDir, nil
}

// pollThroughLobby runs `ssh <vm> true` on the lobby until it succeeds, the
// lobby shows it cannot tell (no such command, not allowed), or ctx ends.
// It only shortens the wait; the direct dial that follows decides. It
// returns what the lobby last said, for the error when the VM never comes.
//
// Polls are sessions on the open lobby connection, so they can be frequent:
// every 100ms for the first 15s (VMs usually boot within seconds), then
// every second.
func (p *Provider) pollThroughLobby(ctx context.Context, lobby *sshx.Client, name string) (last string) {
	start := time.Now()
	wait := 25 * time.Millisecond
	for ctx.Err() == nil {
		stdout, stderr, code, _, err := execLobby(ctx, lobby, "ssh "+shell.Quote(name)+" true")
		if err != nil || code == 0 {
			return last
		}
		last = strings.TrimSpace(string(stderr) + " " + string(stdout))
		msg := strings.ToLower(last)
		if strings.Contains(msg, "command not found") || strings.Contains(msg, "not allowed") || strings.Contains(msg, "unknown command") {
			return ""
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		if wait = wait * 2; wait > 100*time.Millisecond {
			wait = 100 * time.Millisecond
			if time.Since(start) > 15*time.Second {
				wait = time.Second
			}
		}
	}
	return last
}

// removeVM deletes a VM, retrying transport failures. A VM that is already
// gone counts as removed. It runs even when the caller's context has ended.
func (p *Provider) removeVM(lobby *sshx.Client, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * time.Second)
		}
		_, err = runLobby(ctx, lobby, "rm", "--json", name)
		if err == nil || errors.Is(err, ErrNotFound) {
			p.log.Debug("exe.dev VM deleted", "vm", name)
			return nil
		}
		var le *LobbyError
		if errors.As(err, &le) || sshx.IsRefused(err) {
			break // the lobby answered, or cannot be trusted: asking again will not help
		}
	}
	return fmt.Errorf("delete exe.dev VM %s: %w (remove it by hand: %s rm %s, or later moat sandbox gc)", name, err, p.lobbySSHCommand(), name)
}

// runLobby runs one lobby command and returns its JSON payload.
func runLobby(ctx context.Context, lobby *sshx.Client, args ...string) (json.RawMessage, error) {
	payload, _, err := runLobbySent(ctx, lobby, args...)
	return payload, err
}

// runLobbySent is runLobby that also tells whether the command reached the
// lobby (a session was opened for it), so an error may have had effects.
func runLobbySent(ctx context.Context, lobby *sshx.Client, args ...string) (json.RawMessage, bool, error) {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shell.Quote(a)
	}
	stdout, stderr, code, sent, err := execLobby(ctx, lobby, strings.Join(quoted, " "))
	if err != nil {
		return nil, sent, fmt.Errorf("exe.dev %s: %w", args[0], err)
	}
	payload, err := parseLobbyOutput(args[0], stdout, stderr, code)
	return payload, true, err
}

// execLobby runs a lobby command line and returns its output and exit code.
// An error means the outcome is unknown; sent says whether the command may
// have reached the lobby.
func execLobby(ctx context.Context, lobby *sshx.Client, line string) (stdout, stderr []byte, code int, sent bool, err error) {
	sess, err := lobby.NewSession(ctx)
	if err != nil {
		return nil, nil, -1, false, err
	}
	defer sess.Close()
	out, errOut := &execout.Capped{N: 4 << 20}, &execout.Capped{N: 4 << 20}
	sess.Stdout, sess.Stderr = out, errOut
	done := make(chan error, 1)
	go func() { done <- sess.Run(line) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Close()
		return nil, nil, -1, true, ctx.Err()
	}
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
		return out.Bytes(), errOut.Bytes(), 0, true, nil
	case errors.As(err, &exitErr):
		return out.Bytes(), errOut.Bytes(), exitErr.ExitStatus(), true, nil
	default:
		return nil, nil, -1, true, err
	}
}

// lobbySSHCommand is how a user reaches this provider's lobby with ssh.
func (p *Provider) lobbySSHCommand() string {
	host, port, err := net.SplitHostPort(p.cfg.Lobby)
	if err != nil {
		return "ssh " + p.cfg.Lobby
	}
	if port == "22" {
		return "ssh " + host
	}
	return "ssh -p " + port + " " + host
}

// pinnedHostKey accepts only the lobby's key as it was when the VM was
// made: every exe.dev VM is reached through exe.dev's SSH proxy, which
// presents it. The pin holds for the VM's life; errors name the VM (the
// caller adds it).
func pinnedHostKey(lobbyKey ssh.PublicKey) ssh.HostKeyCallback {
	want := lobbyKey.Marshal()
	return func(host string, _ net.Addr, key ssh.PublicKey) error {
		if bytes.Equal(key.Marshal(), want) {
			return nil
		}
		return fmt.Errorf("%s presented host key %s, but exe.dev VMs present the lobby's key %s: refusing to connect "+
			"(the connection may be intercepted, or exe.dev changed its host key since the VM was made)",
			host, ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(lobbyKey))
	}
}

// vmSessions opens the sessions of a VM's handle; its errors name the VM,
// which the SSH address alone does not.
type vmSessions struct {
	client *sshx.Client
	name   string
}

func (v vmSessions) NewChannel(ctx context.Context) (*sshx.Channel, error) {
	s, err := v.client.NewChannel(ctx)
	if err != nil {
		return nil, fmt.Errorf("exe.dev VM %s: %w", v.name, err)
	}
	return s, nil
}

// newName picks VM names; tests replace it.
var newName = randomName

// randomName returns a name exe.dev accepts: "moat-" then ten lowercase
// letters and digits, ending in a letter (names ending in -<digits> are
// refused).
func randomName() string {
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 10)
	rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	b[len(b)-1] = alnum[int(b[len(b)-1])%26]
	return "moat-" + string(b)
}
