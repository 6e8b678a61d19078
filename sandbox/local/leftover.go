package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moatdev/moat/internal/procmark"
	"github.com/moatdev/moat/sandbox"
)

// A local sandbox's record (sandbox.Record) is .<name>.json beside it, in
// the sandbox root, which its commands cannot reach. (Hidden: a glob for
// the sandbox directories, moat-local-*, does not match it.)
func recordPath(dir string) string {
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".json")
}

// RecordPath is where the record of the sandbox in dir is: what removing
// the sandbox by hand removes too.
func RecordPath(dir string) string { return recordPath(dir) }

// markerOf is the sandbox.MarkerVar value of the sandbox in dir: its
// directory's name, unique in the root.
func markerOf(dir string) string { return filepath.Base(dir) }

// killMarked kills the processes that carry the sandbox's mark: those that
// left their command's process group, and, for a leftover, every process
// it still has.
func killMarked(marker string) int { return procmark.Kill(procmark.Env(sandbox.MarkerVar, marker)) }

var _ sandbox.LeftoverFinder = (*Provider)(nil)

// Kind returns "local".
func (p *Provider) Kind() string { return "local" }

func (p *Provider) root() string {
	if p.cfg.Root != "" {
		return p.cfg.Root
	}
	return os.TempDir()
}

// Leftovers implements sandbox.LeftoverFinder: the sandbox directories in
// the sandbox root, with their records. It reads one directory and the
// records it finds, and runs nothing, so it is cheap enough for every run.
// A directory without a record (its maker was killed while creating it)
// has the directory's time as its creation time and an unknown owner.
// Processes are not counted (CountProcesses does).
func (p *Provider) Leftovers(ctx context.Context) ([]sandbox.Leftover, error) {
	root := p.root()
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("local: listing sandboxes: %w", err)
	}
	var out []sandbox.Leftover
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "moat-local-") {
			continue
		}
		dir := filepath.Join(root, e.Name())
		l := sandbox.Leftover{Kind: "local", Name: e.Name(), Where: dir, Processes: -1}
		if b, err := os.ReadFile(recordPath(dir)); err == nil {
			if r, err := sandbox.ParseRecord(b); err == nil {
				l.Record, l.Trusted = r, true
			}
		}
		if l.Created.IsZero() {
			if info, err := e.Info(); err == nil {
				l.Created = info.ModTime().UTC()
			}
		}
		if l.Owner.PID != 0 {
			l.InUse = !l.Owner.Gone()
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b sandbox.Leftover) int { return a.Created.Compare(b.Created) })
	return out, nil
}

var _ sandbox.ProcessCounter = (*Provider)(nil)

// CountProcesses implements sandbox.ProcessCounter: the processes that
// carry each sandbox's mark, in one pass over /proc.
func (p *Provider) CountProcesses(ctx context.Context, ls []sandbox.Leftover) {
	if len(ls) == 0 || !procmark.Supported() {
		return
	}
	counts := procmark.CountEnv(sandbox.MarkerVar)
	for i := range ls {
		if ls[i].Kind == "local" {
			ls[i].Processes = counts[ls[i].Name]
		}
	}
}

// leftoverDir checks that l is a sandbox directory in this provider's
// root, so that a leftover from elsewhere never names a directory to open
// or remove.
func (p *Provider) leftoverDir(l sandbox.Leftover) (string, error) {
	if l.Kind != "local" || !strings.HasPrefix(l.Name, "moat-local-") || strings.ContainsAny(l.Name, `/\`) || l.Name != filepath.Base(l.Name) {
		return "", fmt.Errorf("local: %q is not a local sandbox", l.Name)
	}
	return filepath.Join(p.root(), l.Name), nil
}

// OpenLeftover implements sandbox.LeftoverFinder: a handle on the
// sandbox, whose commands run as those of a new sandbox would (inside
// bubblewrap, but with no network: bringing work home needs none). Its
// Close leaves the sandbox as it is.
func (p *Provider) OpenLeftover(ctx context.Context, l sandbox.Leftover) (sandbox.Handle, error) {
	dir, err := p.leftoverDir(l)
	if err != nil {
		return nil, err
	}
	return p.OpenDir(ctx, dir, filepath.Join(dir, "home", "workspace"))
}

// OpenDir returns a handle on an existing sandbox-shaped directory made
// by someone else (a leftover of this kind, or an exe.dev emulator VM's
// directory): dir holds tmp/ and a home/ that holds workDir. Commands
// run in it as in a local sandbox, with no network; Close leaves the
// directory as it is.
func (p *Provider) OpenDir(ctx context.Context, dir, workDir string) (sandbox.Handle, error) {
	if err := platformSupported(); err != nil {
		return nil, err
	}
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), workDir} {
		if info, err := os.Lstat(d); err != nil || !info.IsDir() {
			return nil, fmt.Errorf("local: %s is not a sandbox directory (no %s)", dir, d)
		}
	}
	if rel, err := filepath.Rel(dir, workDir); err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("local: %s is not inside %s", workDir, dir)
	}
	q := p.offline()
	bwrap, err := q.setup(ctx)
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	h := &handle{
		p: q, dir: dir, home: filepath.Join(dir, "home"), work: workDir, tmp: filepath.Join(dir, "tmp"),
		env: map[string]string{}, bwrap: bwrap, root: r, reopened: true,
		procs: make(map[*proc]struct{}), done: make(chan struct{}),
	}
	if n := q.network(); bwrap != "" && n != NetworkHost {
		if h.net, err = newNetns(ctx, bwrap, q.nsenter, n, q.stack); err != nil {
			r.Close()
			return nil, fmt.Errorf("local: network %s: %w", n, err)
		}
	}
	return h, nil
}

// offline is p with no network for its commands, when bubblewrap gives
// that; p itself otherwise.
func (p *Provider) offline() *Provider {
	if p.cfg.Network == NetworkNone || p.cfg.Bwrap == BwrapOff {
		return p
	}
	c := p.cfg
	c.Network = NetworkNone
	q := New(c)
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if _, err := q.setup(ctx); err != nil {
		return p
	}
	return q
}

// RemoveLeftover implements sandbox.LeftoverFinder: it kills the
// processes that carry the sandbox's mark and removes the directory and
// its record.
func (p *Provider) RemoveLeftover(ctx context.Context, l sandbox.Leftover) error {
	dir, err := p.leftoverDir(l)
	if err != nil {
		return err
	}
	killMarked(markerOf(dir))
	if err := removeTree(dir); err != nil {
		return fmt.Errorf("local: removing %s: %w", dir, err)
	}
	if err := os.Remove(recordPath(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local: %w", err)
	}
	return nil
}

var _ sandbox.Keeper = (*handle)(nil)

// MarkKept implements sandbox.Keeper: the record says the sandbox was
// kept on purpose.
func (h *handle) MarkKept(ctx context.Context) error {
	path := recordPath(h.dir)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("local: %w", err)
	}
	r, err := sandbox.ParseRecord(b)
	if err != nil {
		return fmt.Errorf("local: %w", err)
	}
	r.Kept = true
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, r.Marshal(), 0o600); err != nil {
		return fmt.Errorf("local: %w", err)
	}
	return os.Rename(tmp, path)
}
