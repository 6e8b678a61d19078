package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/internal/gitsync"
	"github.com/moatdev/moat/internal/registry"
	"github.com/moatdev/moat/internal/safetext"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

// leftoverFinders are the finders of the sandbox kinds whose leftovers
// the sandbox commands find (sandbox.Kind.Leftovers), exe.dev VMs aside
// (the exe.dev lobby lists them, see sandbox.go). A new kind plugs in
// where it registers (internal/registry).
//
// specs restricts the kinds (--sandbox; none means every kind); a spec
// of a URL kind (ssh://…) adds that host. Without specs, the host of the
// repository's trusted config is searched too.
func leftoverFinders(ctx context.Context, specs []string) []sandbox.LeftoverFinder {
	env := sandbox.Env{Logger: slog.New(slog.DiscardHandler)}
	hosts := slices.Clone(specs)
	if len(specs) == 0 {
		if p, err := loadProject(ctx, ""); err == nil && p.Config.Sandbox != "" && (p.Trusted || len(p.Config.HostSettings()) == 0) {
			hosts = append(hosts, p.Config.Sandbox)
		}
	}
	var fs []sandbox.LeftoverFinder
	for _, k := range registry.Sandboxes.Kinds() {
		switch {
		case k.Leftovers == nil:
		case !k.URL && (len(specs) == 0 || slices.Contains(specs, k.Name)):
			fs = append(fs, k.Leftovers(k.Name, env))
		case k.URL:
			for _, h := range slices.Compact(slices.Clone(hosts)) {
				if !k.Match(h) {
					continue
				}
				if f := k.Leftovers(h, env); f != nil { // nil: a bad spec, which checkLeftoverSpecs reports
					fs = append(fs, f)
				}
			}
		}
	}
	return fs
}

// checkLeftoverSpecs checks the --sandbox values of the sandbox commands.
func checkLeftoverSpecs(specs []string) error {
	for _, s := range specs {
		if err := registry.Sandboxes.Check(s); err != nil {
			return usageErrorf("--sandbox %q: %w", s, err)
		}
	}
	return nil
}

// found is one leftover with the finder that found it and, once
// inspected, what it holds.
type found struct {
	sandbox.Leftover
	finder sandbox.LeftoverFinder

	inspected  bool
	pending    gitsync.Pending
	home       bool  // the host repository has all of it
	inspectErr error // why what it holds is unknown
}

// findLeftovers asks every finder at once; a finder that fails (an SSH
// host that is down) is reported, and the others' leftovers kept.
func findLeftovers(ctx context.Context, finders []sandbox.LeftoverFinder) ([]*found, []error) {
	var (
		mu   sync.Mutex
		all  []*found
		errs []error
		wg   sync.WaitGroup
	)
	for _, f := range finders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ls, err := f.Leftovers(ctx)
			if c, ok := f.(sandbox.ProcessCounter); ok {
				c.CountProcesses(ctx, ls)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s sandboxes not listed: %w", f.Kind(), err))
			}
			for _, l := range ls {
				all = append(all, &found{Leftover: l, finder: f})
			}
		}()
	}
	wg.Wait()
	slices.SortStableFunc(all, func(a, b *found) int { return a.Created.Compare(b.Created) })
	return all, errs
}

// inspect looks into a leftover that is not in use: what its repository
// holds, and whether the repository it came from has it all.
func (f *found) inspect(ctx context.Context) {
	if f.inspected || f.InUse {
		return
	}
	f.inspected = true
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	h, err := f.finder.OpenLeftover(ctx, f.Leftover)
	if err != nil {
		f.inspectErr = err
		return
	}
	defer h.Close(context.WithoutCancel(ctx))
	f.pending, f.inspectErr = gitsync.Inspect(ctx, h, gitsync.Options{Timeout: 30 * time.Second})
	if f.inspectErr != nil || !f.pending.Repo || f.pending.Head == "" {
		return
	}
	if !f.pending.Unsynced() {
		f.home = true // HEAD is the sync base, which the host had
		return
	}
	// Home means on a branch of the repository the run came from: moat
	// may have been killed after a sync out, before the merge, when the
	// commits are only under refs/moat/runs/ there.
	if repo := f.Repo(); repo != "" && filepath.IsAbs(repo) && !f.pending.Dirty {
		f.home = moat.OnBranch(ctx, repo, f.pending.Head)
	}
}

// unsafeToRemove says whether removing the leftover may lose work: it
// holds commits or changes the host may not have, or what it holds is
// unknown.
func (f *found) unsafeToRemove() bool {
	return f.inspectErr != nil || (f.pending.Repo && f.pending.Head != "" && !f.home)
}

// workText says, for people, what the leftover holds.
func (f *found) workText() string {
	switch {
	case f.InUse:
		return "in use by moat (pid " + fmt.Sprint(f.Owner.PID) + ")"
	case !f.inspected:
		return "-"
	case f.inspectErr != nil:
		return "unknown (" + firstLine(f.inspectErr.Error()) + ")"
	case !f.pending.Repo || f.pending.Head == "":
		return "no repository"
	case f.home:
		return "nothing to bring home"
	}
	var parts []string
	if f.pending.Ahead > 0 {
		parts = append(parts, plural(f.pending.Ahead, "commit", "commits"))
	}
	if f.pending.Dirty {
		parts = append(parts, "uncommitted work")
	}
	return strings.Join(parts, " + ") + " not brought home"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// fromText names the repository a leftover came from, for a sentence.
func (f *found) fromText() string {
	if r := f.Repo(); r != "" {
		return " from " + safetext.String(r)
	}
	return ""
}

// lookupLeftover finds the leftover named name ("NAME" or "KIND:NAME").
func lookupLeftover(all []*found, name string) (*found, error) {
	kind, n, ok := strings.Cut(name, ":")
	if !ok || strings.Contains(name, "://") { // a URL kind's name, not KIND:NAME
		kind, n = "", name
	}
	var match []*found
	for _, f := range all {
		if f.Name == n && (kind == "" || f.Kind == kind) {
			match = append(match, f)
		}
	}
	switch len(match) {
	case 0:
		return nil, nil
	case 1:
		return match[0], nil
	}
	var kinds []string
	for _, f := range match {
		kinds = append(kinds, f.Kind+":"+f.Name)
	}
	return nil, usageErrorf("%s names %d sandboxes: say which, as %s", name, len(match), strings.Join(kinds, " or "))
}

// recoverInto brings a leftover's work home and says what it did on out.
// fromRepo (gc) sends it to the repository it came from, and only when
// that is sure (a trusted record, or the repository moat runs in); else
// it goes to the repository moat runs in (recover).
func recoverInto(ctx context.Context, out io.Writer, f *found, fromRepo bool, lim syncLimits) (*moat.RecoverResult, error) {
	repo, err := recoverRepo(ctx, f, fromRepo)
	if err != nil {
		return nil, err
	}
	h, err := f.finder.OpenLeftover(ctx, f.Leftover)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	defer h.Close(context.WithoutCancel(ctx))
	res, err := moat.Recover(ctx, moat.RecoverOptions{Repo: repo, Sandbox: h, Name: f.Name, RunID: f.Labels[sandbox.LabelRun],
		MaxFileBytes: lim.fileBytes.n, MaxSyncBytes: lim.syncBytes.n, MaxSyncFiles: lim.files})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	name := safetext.String(f.Name)
	switch {
	case res.NoRepository:
		fmt.Fprintf(out, "%s holds no repository: nothing to bring home\n", name)
	case res.AlreadyHome:
		fmt.Fprintf(out, "%s holds nothing %s does not have (its head is %s)\n", name, safetext.String(repo), short(res.Head))
	}
	if res.Branch != "" {
		fmt.Fprintf(out, "brought %s home from %s into %s as branch %s\n", plural(len(res.Commits), "commit", "commits"), name, safetext.String(repo), res.Branch)
		for _, c := range res.Commits {
			fmt.Fprintf(out, "  %s %s\n", c.SHA, safetext.String(c.Subject))
		}
	}
	if res.UncommittedBranch != "" {
		fmt.Fprintf(out, "the uncommitted work (left during an unfinished merge or rebase) is on branch %s\n", res.UncommittedBranch)
	}
	return res, nil
}

// recoverRepo is the repository a leftover's work goes into (see
// recoverInto).
func recoverRepo(ctx context.Context, f *found, fromRepo bool) (string, error) {
	var here, from string
	if wd, err := os.Getwd(); err == nil {
		if r, err := hostgit.Locate(ctx, 30*time.Second, wd); err == nil {
			here = r.TopLevel
		}
	}
	if l := f.Repo(); l != "" && filepath.IsAbs(l) {
		if r, err := hostgit.Locate(ctx, 30*time.Second, l); err == nil {
			from = r.TopLevel
		}
	}
	name := safetext.String(f.Name)
	switch {
	case !fromRepo && here != "":
		return here, nil
	case from != "" && (f.Trusted || from == here):
		return from, nil
	case fromRepo && f.Repo() != "":
		return "", fmt.Errorf("%s: not brought home: it says it came from %s, which only its own commands wrote; run moat sandbox recover %s in the repository it belongs to", name, safetext.String(f.Repo()), name)
	case fromRepo:
		return "", fmt.Errorf("%s: not brought home: it does not say which repository it came from; run moat sandbox recover %s in the repository it belongs to", name, name)
	}
	return "", usageErrorf("%s: run moat sandbox recover in the git repository the work should go into", name)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// noteLeftovers prints one line when this repository has leftovers of
// earlier runs: on this machine (local sandboxes, emulator VMs: a
// directory listing and a few small files, no command, no network), and
// on the run's own SSH host, when it runs on one (one command over the
// connection the run opens anyway; bounded, and skipped on any error).
func noteLeftovers(ctx context.Context, w io.Writer, repoTop string, run sandbox.Provider) {
	// The kinds on this computer, and the run's own provider when it
	// finds leftovers (an SSH host's).
	var finders []sandbox.LeftoverFinder
	seen := map[string]bool{}
	add := func(f sandbox.LeftoverFinder) {
		if f != nil && !seen[f.Kind()] {
			seen[f.Kind()] = true
			finders = append(finders, f)
		}
	}
	if f, ok := run.(sandbox.LeftoverFinder); ok {
		add(f)
	}
	for _, k := range registry.Sandboxes.Kinds() {
		if k.Leftovers != nil && !k.URL {
			add(k.Leftovers(k.Name, sandbox.Env{Logger: slog.New(slog.DiscardHandler)}))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n := 0
	var first string
	for _, f := range finders {
		ls, err := f.Leftovers(ctx)
		if err != nil {
			continue
		}
		for _, l := range ls {
			if !l.InUse && l.Repo() == repoTop {
				if n == 0 {
					first = l.Name
				}
				n++
			}
		}
	}
	switch n {
	case 0:
	case 1:
		fmt.Fprintf(w, "moat: a sandbox of an earlier run of this repository was left behind: %s (moat sandbox recover %s brings its work home; moat sandbox gc removes what is safe to remove)\n", first, first)
	default:
		fmt.Fprintf(w, "moat: %d sandboxes of earlier runs of this repository were left behind (moat sandbox ls lists them; moat sandbox recover NAME brings the work home)\n", n)
	}
}
