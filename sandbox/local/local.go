// Package local is the isolated sandbox provider that lives on this machine:
// every sandbox is a private temporary directory, and every command runs
// inside bubblewrap (bwrap) namespaces when bwrap is installed, so that it
// can write inside its sandbox and nowhere else.
//
// Layout of one sandbox (all paths are the same inside and outside bwrap):
//
//	<Root>/moat-local-<random>/          0700, removed by Close
//	<Root>/moat-local-<random>/home/     HOME of every command
//	<Root>/moat-local-<random>/home/workspace/   WorkDir
//	<Root>/moat-local-<random>/tmp/      TMPDIR (and /tmp under bwrap)
//	<Root>/.moat-local-<random>.json     its sandbox.Record, out of its commands' reach
//
// Every command's processes carry sandbox.MarkerVar (the directory's
// name), which the sandbox's environment cannot override: Close kills
// what carries it (a daemon that left its process group, without bwrap),
// and so does RemoveLeftover once the sandbox's maker is gone (see
// Leftovers).
//
// Under bwrap a command sees the host's system directories read-only (see
// hostMounts), a fresh /dev and /proc, its sandbox's tmp directory at /tmp,
// and its sandbox directory read-write at the same path as on the host. It
// runs in new user, pid, ipc, uts, cgroup and mount namespaces and in its
// sandbox's network namespace, in a new session, and it dies with the
// process that started it. When the command exits, everything it started
// dies with its pid namespace.
//
// Network (Config.Network): by default (NetworkIsolated) a sandbox has a
// network namespace of its own, made by Create and shared by all its
// commands as the processes of one machine share its network (a server
// one command runs on loopback answers the sandbox's other commands, and
// nothing else), whose only way out is one slirp4netns, started by Create
// and ended by Close (and when moat ends, however it ends): outbound
// connections and DNS work, the host's loopback services and abstract Unix
// sockets do not. NetworkNone is such a namespace with only loopback in
// it; NetworkHost, which must be asked for, shares the host's network.
// Commands enter their sandbox's namespace through nsenter (util-linux),
// or, when moat runs as root, forked from a thread moved into it.
//
// Without bwrap (not installed, not working, Config.Bwrap "off", or not
// Linux) commands are plain processes in their own session and process
// group: they can write anywhere the user running moat can. The provider says
// so once per process with a warning.
//
// Commands: each Exec runs "/bin/sh -c cmd" with a minimal environment (PATH
// from the host, HOME, TMPDIR, TERM=dumb, USER, LANG and LC_ALL when set),
// then CreateOptions.Env, then ExecOptions.Env. A command is the leader of
// its own session; cancelling ctx or closing the sandbox SIGKILLs its whole
// process group (and, under bwrap, its pid namespace). When a command exits,
// whatever it left running in its group is killed too, in both modes, so an
// Exec leaves no processes behind (without bwrap, one that moved itself to
// another process group or session escapes this). Sudo runs the command as uid 0 in a
// user namespace under bwrap; without bwrap it runs the command directly
// when moat is root, else through "sudo -n" (the environment then travels in
// a private file, never on sudo's command line).
//
// Copies: sandbox paths are relative to WorkDir or absolute inside the
// sandbox directory; anything else is refused. All sandbox-side file access
// goes through an os.Root on the sandbox directory, so links planted by a
// command cannot redirect a copy outside the sandbox.
//
// The provider works on Linux (with or without bwrap) and on other Unix
// systems (without); on Windows, Create returns an error.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/sandbox"
)

// BwrapOff is the Config.Bwrap value that turns bubblewrap off.
const BwrapOff = "off"

// Config configures a local Provider. The zero value is ready to use.
type Config struct {
	// Root is the directory under which sandboxes are made; it is created
	// (0700) when missing. Empty means os.TempDir().
	Root string

	// Bwrap selects the bubblewrap binary. Empty means "bwrap" found on
	// PATH, falling back to plain processes (with a warning) when it is
	// missing or does not work on this machine. BwrapOff ("off") means never
	// use bwrap. Any other value is the path of the bwrap binary to use; if
	// that binary does not work, Create fails rather than run commands
	// without the isolation that was asked for.
	Bwrap string

	// Logger receives the provider's warnings and debug messages. Nil means
	// slog.Default().
	Logger *slog.Logger

	// Network is the commands' network under bwrap: NetworkIsolated
	// (the default; "" means it), NetworkNone or NetworkHost. Isolated or
	// none without bwrap, or isolated without a working slirp4netns, makes
	// Create fail: moat never quietly gives a weaker network than asked.
	// Without bwrap (the warned fallback of the zero Config) commands use
	// the host network.
	Network Network

	// NetStack is the slirp4netns binary that gives NetworkIsolated its
	// outbound connectivity. Empty means "slirp4netns" found on PATH.
	NetStack string

	// viaNsenter makes commands join their sandbox's network through
	// nsenter even where moat could do without (as root): for tests.
	viaNsenter bool
}

// Provider makes local sandboxes. Create a Provider with New.
type Provider struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	probed   bool
	bwrap    string // path of a working bwrap; "" for plain processes
	stack    string // path of a working slirp4netns, for NetworkIsolated
	nsenter  string // nsenter, for NetworkIsolated and NetworkNone; "" as root
	probeErr error  // the containment asked for is not available
	plainWhy string // why commands run as plain processes, when they do
}

var _ sandbox.Provider = (*Provider)(nil)

// New returns a Provider for cfg. It does not touch the file system or run
// anything; bwrap is probed when it is first needed.
func New(cfg Config) *Provider {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Provider{cfg: cfg, log: log}
}

// Name returns "local".
func (p *Provider) Name() string { return "local" }

// Describe names the kind and the containment its sandboxes get, for the
// run's status line: "local, bwrap, network isolated (slirp4netns)", or
// "local, bwrap, network host (shares this computer's network)". It probes
// as Create would (once, boundedly); just "local" when that fails.
func (p *Provider) Describe() string {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	c, err := p.Containment(ctx)
	if err != nil {
		return "local"
	}
	return "local, " + c.String()
}

var _ sandbox.Describer = (*Provider)(nil)

// Isolated reports whether the provider's commands run inside bubblewrap.
// It probes bwrap on first use (at most a few seconds).
func (p *Provider) Isolated() bool {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	bwrap, err := p.setup(ctx)
	return err == nil && bwrap != ""
}

const (
	probeTimeout = 15 * time.Second
	// closeWait bounds how long Close waits for running operations to end
	// after killing their processes.
	closeWait = 10 * time.Second
)

// plainWarned makes the "no isolation" warning appear once per process.
var plainWarned atomic.Bool

// setup decides, once per Provider, whether commands run under bwrap and
// how they reach the network. An interrupted probe (ctx ended) is not
// remembered.
func (p *Provider) setup(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.probed {
		return p.bwrap, p.probeErr
	}
	bwrap, fatal, why, fix := p.decide(ctx)
	var stack, nsenter string
	if fatal == nil {
		stack, nsenter, fatal = p.decideNetwork(ctx, bwrap, why)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("local: checking bwrap: %w", err)
	}
	p.probed, p.bwrap, p.stack, p.nsenter, p.probeErr = true, bwrap, stack, nsenter, fatal
	if fatal == nil && bwrap == "" {
		p.plainWhy = why + ": " + plainConsequence + fix // said by the first Create
	}
	if bwrap != "" && fatal == nil {
		p.log.Debug("local sandbox: commands run inside bubblewrap", "bwrap", bwrap, "network", p.network(), "stack", stack)
	}
	return bwrap, fatal
}

const plainConsequence = "local sandbox commands run as plain processes and can write anywhere your user can"

// decide returns the bwrap binary to use (or ""), a fatal error for an
// explicitly configured bwrap that does not work, and otherwise why
// commands would run as plain processes and what to do about it (fix is
// "" or starts with "; ").
func (p *Provider) decide(ctx context.Context) (bwrap string, fatal error, why, fix string) {
	switch want := p.cfg.Bwrap; {
	case want == BwrapOff:
		return "", nil, `bwrap turned off (Bwrap: "off")`, ""
	case runtime.GOOS != "linux":
		if want != "" {
			return "", fmt.Errorf("local: Bwrap is set to %q, but bubblewrap only works on Linux, not %s", want, runtime.GOOS), "", ""
		}
		return "", nil, "bubblewrap isolation needs Linux", ""
	case want == "":
		path, err := exec.LookPath("bwrap")
		if err != nil {
			return "", nil, "bwrap not found", "; install bubblewrap for isolation"
		}
		if err := probeBwrap(ctx, path); err != nil {
			return "", nil, fmt.Sprintf("bwrap (%s) does not work here (%v)", path, err), "; check that user namespaces are enabled"
		}
		return path, nil, "", ""
	default:
		path, err := exec.LookPath(want)
		if err != nil {
			return "", fmt.Errorf("local: bwrap %q: %w", want, err), "", ""
		}
		if err := probeBwrap(ctx, path); err != nil {
			return "", fmt.Errorf("local: bwrap %q does not work here: %w", path, err), "", ""
		}
		return path, nil, "", ""
	}
}

// otherNetworks is the way out when network isolated is not available.
const otherNetworks = "ask for network none (no network at all) or host (this computer's network, its loopback services and abstract Unix sockets included)"

// decideNetwork returns the slirp4netns binary for NetworkIsolated and the
// nsenter binary that puts commands in their sandbox's network for
// NetworkIsolated and NetworkNone, or an error when the network asked for
// cannot be given: isolated or none without bwrap (why says why there is
// none) or without nsenter, isolated without a working slirp4netns.
func (p *Provider) decideNetwork(ctx context.Context, bwrap, why string) (stack, nsenter string, err error) {
	n := p.network()
	switch {
	case n == NetworkHost:
		return "", "", nil
	case bwrap == "" && p.cfg.Network == "":
		return "", "", nil // the zero Config's warned fallback: host network
	case bwrap == "":
		return "", "", fmt.Errorf("local: network %s needs bubblewrap, and %s; install bubblewrap, or ask for network host", n, why)
	}
	if n == NetworkIsolated {
		want := p.cfg.NetStack
		if want == "" {
			want = "slirp4netns"
		}
		if stack, err = exec.LookPath(want); err != nil {
			return "", "", fmt.Errorf("local: network isolated needs slirp4netns (%w): install it (Debian/Ubuntu: apt install slirp4netns), or %s", err, otherNetworks)
		}
	}
	// Root may put commands in the network namespace itself; others go
	// through nsenter, which joins the namespace's user namespace first.
	if p.cfg.viaNsenter || !joinFromThread() {
		if nsenter, err = exec.LookPath("nsenter"); err != nil {
			return "", "", fmt.Errorf("local: network %s needs nsenter (%w): install util-linux, or ask for network host", n, err)
		}
	}
	if err := probeNet(ctx, bwrap, nsenter, n, stack); err != nil {
		if n == NetworkIsolated {
			return "", "", fmt.Errorf("local: network isolated: %s does not work here (%w): fix that, or %s", stack, err, otherNetworks)
		}
		return "", "", fmt.Errorf("local: network %s does not work here (%w): fix that, or ask for network host", n, err)
	}
	return stack, nsenter, nil
}

// probeBwrap runs true inside the same kind of namespaces commands get.
func probeBwrap(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	args := append(bwrapArgs(false), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--", "/bin/sh", "-c", "exit 0")
	c := exec.CommandContext(ctx, path, args...)
	c.Env = []string{"PATH=" + hostPath()}
	out, err := c.CombinedOutput()
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

// bwrapArgs are the namespace options of every bwrap invocation.
func bwrapArgs(sudo bool) []string {
	a := []string{
		"--die-with-parent",
		"--new-session", // no controlling terminal: no TIOCSTI into the user's shell
		"--unshare-all",
		// A user namespace always, not only "if possible": mounts inherited
		// from the host are then locked, so even a root command cannot
		// remount / read-write.
		"--unshare-user",
	}
	if sudo {
		a = append(a, "--uid", "0", "--gid", "0")
	}
	return a
}

func hostPath() string {
	if p := os.Getenv("PATH"); p != "" {
		return p
	}
	return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

// Create makes a fresh sandbox directory. See the package documentation for
// its layout.
func (p *Provider) Create(ctx context.Context, opts sandbox.CreateOptions) (sandbox.Handle, error) {
	if err := platformSupported(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("local: create: %w", err)
	}
	env, err := shell.MergeEnv(nil, opts.Env)
	if err != nil {
		return nil, fmt.Errorf("local: create: %w", err)
	}
	bwrap, err := p.setup(ctx)
	if err != nil {
		return nil, err
	}
	if bwrap == "" && plainWarned.CompareAndSwap(false, true) {
		p.log.Warn(p.plainWhy)
	}
	root := p.cfg.Root
	if root == "" {
		root = os.TempDir()
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("local: create: sandbox root: %w", err)
	}
	// Canonical path: sandbox paths must equal host paths, also for pwd -P
	// and for bwrap, which does not like symlinks in bind destinations.
	if root, err = filepath.Abs(root); err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return nil, fmt.Errorf("local: create: sandbox root: %w", err)
	}
	dir, err := os.MkdirTemp(root, "moat-local-")
	if err != nil {
		return nil, fmt.Errorf("local: create: %w", err)
	}
	h := &handle{
		p:     p,
		dir:   dir,
		home:  filepath.Join(dir, "home"),
		work:  filepath.Join(dir, "home", "workspace"),
		tmp:   filepath.Join(dir, "tmp"),
		env:   env,
		bwrap: bwrap,
		procs: make(map[*proc]struct{}),
		done:  make(chan struct{}),
	}
	if err := h.init(); err != nil {
		if h.root != nil {
			h.root.Close()
		}
		removeTree(dir)
		return nil, fmt.Errorf("local: create: %w", err)
	}
	if n := p.network(); bwrap != "" && n != NetworkHost {
		if h.net, err = newNetns(ctx, bwrap, p.nsenter, n, p.stack); err != nil {
			h.root.Close()
			removeTree(dir)
			return nil, fmt.Errorf("local: create: network %s: %w", n, err)
		}
	}
	// The record lies beside the sandbox directory, out of its commands'
	// reach (they see only the directory).
	if err := os.WriteFile(recordPath(dir), sandbox.NewRecord(opts.Labels).Marshal(), 0o600); err != nil {
		h.net.close()
		h.root.Close()
		removeTree(dir)
		return nil, fmt.Errorf("local: create: %w", err)
	}
	p.log.Debug("local sandbox created", "dir", dir, "isolated", bwrap != "")
	return h, nil
}

// handle is one local sandbox.
type handle struct {
	p                    *Provider
	dir, home, work, tmp string
	env                  map[string]string // CreateOptions.Env, validated
	bwrap                string            // "" for plain processes
	root                 *os.Root          // the sandbox directory
	net                  *netns            // bwrap, network isolated or none
	// reopened is set for a handle on a leftover (OpenLeftover, OpenDir):
	// its Close leaves the sandbox as it is.
	reopened bool

	mu     sync.Mutex
	closed bool
	procs  map[*proc]struct{} // running commands
	ops    sync.WaitGroup     // running Exec, CopyIn, CopyOut calls
	done   chan struct{}      // closed when Close starts

	closeOnce sync.Once
	closeErr  error
}

var _ sandbox.Handle = (*handle)(nil)

func (h *handle) init() error {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{h.home, 0o755}, {h.work, 0o755}, {h.tmp, 0o1777}} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			return err
		}
		if err := os.Chmod(d.path, d.mode); err != nil { // past the umask
			return err
		}
	}
	r, err := os.OpenRoot(h.dir)
	if err != nil {
		return err
	}
	h.root = r
	return nil
}

func (h *handle) WorkDir() string { return h.work }

// Dir is the sandbox's directory on this computer: everything of the
// sandbox (its home, work directory and temporary files) is in it, and
// Close removes it.
func (h *handle) Dir() string { return h.dir }

// begin registers a running operation; it fails once Close has started.
func (h *handle) begin(op string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("local: %s: %w", op, sandbox.ErrClosed)
	}
	h.ops.Add(1)
	return nil
}

func (h *handle) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Close kills the sandbox's running commands, waits (boundedly) for running
// operations to end, and removes the sandbox directory.
func (h *handle) Close(ctx context.Context) error {
	first := false
	h.closeOnce.Do(func() {
		first = true
		h.mu.Lock()
		h.closed = true
		close(h.done)
		for pr := range h.procs {
			pr.kill()
		}
		h.mu.Unlock()

		waited := make(chan struct{})
		go func() { h.ops.Wait(); close(waited) }()
		select {
		case <-waited:
			h.net.close()
		case <-time.After(closeWait):
			h.p.log.Warn("local sandbox: operations still running after Close killed them; removing the sandbox anyway", "dir", h.dir)
			// A command still starting may need the namespaces.
			h.net.stopStack()
			go func() { h.ops.Wait(); h.net.close() }()
		}
		h.root.Close()
		if h.reopened {
			return
		}
		// Without bwrap, what left the commands' process groups (setsid, a
		// daemon) is found by the sandbox's mark; under bwrap nothing
		// leaves its command's pid namespace, which ended with it.
		if h.bwrap == "" {
			killMarked(markerOf(h.dir))
		}
		if err := removeTree(h.dir); err != nil {
			h.closeErr = fmt.Errorf("local: close: removing %s: %w", h.dir, err)
			return
		}
		if err := os.Remove(recordPath(h.dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			h.closeErr = fmt.Errorf("local: close: %w", err)
			return
		}
		h.p.log.Debug("local sandbox removed", "dir", h.dir)
	})
	if !first {
		return nil // idempotent: only the first Close reports an error
	}
	return h.closeErr
}

// removeTree removes dir, first making writable any directory a command made
// read-only (RemoveAll cannot empty those when not running as root).
func removeTree(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	// WalkDir calls fn for a directory before reading it, so a directory
	// without read permission is fixed before it is listed. It never
	// follows symlinks.
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // keep going; RemoveAll reports what is left
		}
		if info, err := d.Info(); err == nil && info.Mode().Perm()&0o700 != 0o700 {
			_ = os.Chmod(p, info.Mode().Perm()|0o700)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return nil
}
