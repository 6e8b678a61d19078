package moat

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moatdev/moat/internal/worktree/hostgit"
)

// What a run says up front about what the sandbox will not have.

// noteUncommitted warns, in one line, when the user's working tree has
// changes or untracked files: a run starts from a commit, so they are not
// part of it (moat exec syncs them).
func (r *runner) noteUncommitted(ctx context.Context, p *plan) {
	// --no-renames: one record per path, so that they can be counted.
	args := []string{"status", "--porcelain", "-z", "--no-renames", "--ignore-submodules=all"}
	// moat's temporary files, and its sandboxes', are not the user's
	// changes, even with TMPDIR inside the repository; they are being
	// written while this runs.
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		tmp = os.TempDir()
	}
	if rel, err := filepath.Rel(p.repo.TopLevel, tmp); err == nil && filepath.IsLocal(rel) {
		args = append(args, "--", ".", ":(top,exclude)"+filepath.ToSlash(rel))
	}
	out, err := hostgit.Run(ctx, 0, p.repo.TopLevel, args...)
	if err != nil {
		r.logf("git status, to see what is left uncommitted: %v", err)
		return
	}
	n := len(hostgit.SplitZ(out))
	if n == 0 {
		return
	}
	r.emit(Event{Kind: EventWarning, Text: fmt.Sprintf("%d uncommitted change(s) in your working tree are not part of this run, which starts from commit %.10s (commit them first to include them; moat exec includes them)", n, p.base)})
}

// noteSubmodules warns, naming them, that the submodules of the run's
// base arrive empty: only the repository itself is synced.
func (r *runner) noteSubmodules(ctx context.Context, p *plan) {
	if _, err := hostgit.Run(ctx, 0, p.repo.TopLevel, "cat-file", "-e", p.base+":.gitmodules"); err != nil {
		return // no .gitmodules: no submodules (the usual case)
	}
	out, err := hostgit.Run(ctx, 0, p.repo.TopLevel, "ls-tree", "-r", "-z", "--full-tree", p.base)
	if err != nil {
		r.logf("listing the submodules: %v", err)
		return
	}
	var paths []string
	for _, rec := range hostgit.SplitZ(out) {
		// "<mode> <type> <object>\t<path>"; a submodule is a commit.
		meta, path, ok := strings.Cut(rec, "\t")
		if ok && strings.HasPrefix(meta, "160000 commit ") {
			paths = append(paths, path)
		}
	}
	if len(paths) == 0 {
		return
	}
	r.emit(Event{Kind: EventWarning, Text: fmt.Sprintf("submodules are not synced: %s arrive(s) empty in the sandbox (moat brings this repository only)", strings.Join(paths, ", "))})
}
