package gitsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

// SyncIn makes the sandbox repository at h.WorkDir() from the host worktree
// hostWorktree: every local branch, remote-tracking branch and tag (other
// moat runs' temporary branches excepted) with their history, the worktree's branch checked out
// at the worktree's HEAD (detached when the worktree is), HEAD verified equal
// on both sides. Only committed state travels; the host's uncommitted
// changes stay on the host.
//
// The sandbox repository gets, in its own config: a git identity (the host
// repository's user.name and user.email, else "moat agent"
// <agent@moat.invalid>) and a sync id; in .git/info/exclude: the host's
// exclude patterns (.git/info/exclude and core.excludesFile) and /.moat/;
// and refs/moat/sync-base at HEAD. WorkDir must not hold a repository yet;
// other files in it are kept.
func SyncIn(ctx context.Context, hostWorktree string, h sandbox.Handle, o Options) error {
	s := newSyncer(h, o)
	if err := s.syncIn(ctx, hostWorktree); err != nil {
		return fmt.Errorf("sync-in: %w", err)
	}
	return nil
}

func (s *syncer) syncIn(ctx context.Context, hostWorktree string) error {
	repo, err := hostgit.Locate(ctx, s.timeout, hostWorktree)
	if err != nil {
		return err
	}
	wt := repo.TopLevel
	head, err := s.line(ctx, wt, "rev-parse", "-q", "--verify", "HEAD^{commit}")
	if err != nil || head == "" {
		return fmt.Errorf("the worktree %s has no commit checked out; nothing to sync", wt)
	}
	branch, err := s.line(ctx, wt, "symbolic-ref", "-q", "--short", "HEAD")
	if err != nil && hostgit.ExitCode(err) != 1 { // 1: detached
		return err
	}
	id, err := hostgit.ReadIdentity(ctx, s.timeout, wt)
	if err != nil {
		return err
	}
	exclude := s.hostExcludes(ctx, repo)

	tmp, err := os.MkdirTemp("", "moat-bundle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bundle := filepath.Join(tmp, "repo.bundle")
	// All branches, tags and remote-tracking refs except other runs'
	// temporary branches, plus HEAD (which may be detached or this run's
	// temporary branch). Not --all: it also walks the HEADs of other
	// worktrees, and a concurrent run removing its worktree makes that fail
	// ("bad object worktrees/<name>/HEAD").
	args := []string{"bundle", "create", "-q", bundle, "--exclude=moat/*", "--branches", "--tags", "--remotes", "HEAD"}
	if strings.HasPrefix(branch, "moat/") {
		args = append(args, "refs/heads/"+branch)
	}
	s.log("sync-in: bundling %s", wt)
	if _, err := s.git(ctx, wt, args...); err != nil {
		return err
	}

	work := s.h.WorkDir()
	// A repository an interrupted sync-in left (its marker still there) is
	// started over: that makes SyncIn safe to retry after a dropped
	// connection.
	res, err := s.exec(ctx, `if [ -e .git/`+partialMarker+` ]; then rm -rf .git; fi; test -e .git`, nil)
	if err != nil {
		return err
	}
	if res.ExitCode == 0 {
		// A sync-in whose last answer was lost finished all the same.
		if out, err := s.run(ctx, sgit+" rev-parse HEAD "+SyncBaseRef, nil); err == nil && strings.Fields(out) != nil &&
			strings.Join(strings.Fields(out), " ") == head+" "+head {
			s.log("sync-in: the sandbox already is at %s (an earlier attempt finished)", head[:12])
			return nil
		}
		return fmt.Errorf("the sandbox directory %s already holds a git repository; sync-in needs a fresh sandbox", work)
	}
	stmp, err := s.mktemp(ctx)
	if err != nil {
		return err
	}
	defer s.rmTemp(ctx, stmp)
	sbundle := stmp + "/repo.bundle"
	s.log("sync-in: copying the bundle into the sandbox")
	if err := s.copyIn(ctx, bundle, sbundle); err != nil {
		return err
	}

	// git init plus fetch, not clone: it works in a WorkDir that already
	// has files, mirrors the host's branch names as local branches, and
	// leaves no "origin" pointing at a deleted bundle. HEAD first points at
	// an unborn branch no fetch can write to.
	// The marker goes first, so no attempt can leave a .git without it.
	if _, err := s.run(ctx, "mkdir -p .git && touch .git/"+partialMarker+" && "+sgit+" init -q && "+sgit+" symbolic-ref HEAD refs/heads/moat-sync-in-unborn", nil); err != nil {
		return err
	}
	if err := s.ensureSafeDirectory(ctx, work); err != nil {
		return err
	}
	if _, err := s.run(ctx, sgit+" fetch -q --no-tags "+shell.Quote(sbundle)+
		" '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*' '+refs/remotes/*:refs/remotes/*' '+HEAD:"+SyncBaseRef+"'", nil); err != nil {
		return err
	}
	checkout := sgit + " -c advice.detachedHead=false checkout -q "
	if branch != "" {
		checkout += "-B " + shell.Quote(branch) + " " + head
	} else {
		checkout += "--detach " + head
	}
	if _, err := s.run(ctx, checkout, nil); err != nil {
		return err
	}
	cfg := fmt.Sprintf("%s config user.name %s && %s config user.email %s && %s config %s %s",
		sgit, shell.Quote(id.Name), sgit, shell.Quote(id.Email), sgit, syncIDKey, randHex(8))
	if _, err := s.run(ctx, cfg, nil); err != nil {
		return err
	}
	if _, err := s.run(ctx, `mkdir -p .git/info && cat >> .git/info/exclude`, strings.NewReader(exclude)); err != nil {
		return err
	}
	out, err := s.run(ctx, "rm -f .git/"+partialMarker+" && "+sgit+" rev-parse HEAD && "+sgit+" rev-parse "+SyncBaseRef, nil)
	if err != nil {
		return err
	}
	got := strings.Fields(out)
	if len(got) != 2 || got[0] != head || got[1] != head {
		return fmt.Errorf("HEAD mismatch after sync-in: host %s, sandbox %q", head, out)
	}
	s.log("sync-in: sandbox at %s on %s", head[:12], orDetached(branch))
	return nil
}

// ensureSafeDirectory makes git accept the sandbox repository when its
// directory belongs to another user. safe.directory is honoured only in
// global or system configuration, so it goes to the sandbox's global config
// (the sandbox's, never the host's), once.
func (s *syncer) ensureSafeDirectory(ctx context.Context, work string) error {
	res, err := s.exec(ctx, sgit+" rev-parse --git-dir", nil)
	if err != nil {
		return err
	}
	if res.ExitCode == 0 {
		return nil
	}
	if !strings.Contains(res.Stderr, "dubious ownership") {
		return fmt.Errorf("gitsync: the new sandbox repository does not work: %s", strings.TrimSpace(res.Stderr))
	}
	q := shell.Quote(work)
	s.log("sync-in: marking %s as a safe directory in the sandbox's git config", work)
	_, err = s.run(ctx, "git config --global --get-all safe.directory | grep -qxF "+q+" || git config --global --add safe.directory "+q, nil)
	return err
}

// hostExcludes returns the exclude patterns the host applies besides
// .gitignore files, so the sandbox ignores the same untracked files. Their
// content goes into the sandbox, so the repository must not choose what
// host file is read: info/exclude is read only if it (or a link it is)
// stays inside the git directory, and a core.excludesFile that only the
// repository's own configuration sets only if it is inside the repository
// (one in the user's global or system configuration is the user's choice).
func (s *syncer) hostExcludes(ctx context.Context, repo hostgit.Repo) string {
	var b strings.Builder
	b.WriteString("\n# from the host repository (moat sync-in)\n/.moat/\n")
	add := func(p string, data []byte, err error) {
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				s.log("sync-in: not reading %s: %v", p, err)
			}
			return
		}
		b.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	addIn := func(dir, p string) {
		rel, err := filepath.Rel(dir, p)
		if err != nil || !filepath.IsLocal(rel) {
			s.log("sync-in: not reading %s: the repository's configuration names it, and it is outside %s", p, dir)
			return
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			add(p, nil, err)
			return
		}
		defer root.Close()
		data, err := hostgit.ReadText(root, rel)
		add(p, data, err)
	}
	addIn(repo.CommonDir, filepath.Join(repo.CommonDir, "info", "exclude"))
	effective, _ := s.line(ctx, repo.TopLevel, "config", "--path", "--get", "core.excludesFile")
	trusted, _ := s.line(ctx, repo.TopLevel, "config", "--includes", "--global", "--path", "--get", "core.excludesFile")
	if trusted == "" {
		trusted, _ = s.line(ctx, repo.TopLevel, "config", "--includes", "--system", "--path", "--get", "core.excludesFile")
	}
	switch {
	case effective != "" && effective == trusted:
		data, err := hostgit.ReadText(nil, effective)
		add(effective, data, err)
	case effective != "":
		p := effective
		if !filepath.IsAbs(p) {
			p = filepath.Join(repo.TopLevel, p)
		}
		addIn(repo.TopLevel, filepath.Clean(p))
	default:
		p := ""
		if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
			p = filepath.Join(x, "git", "ignore")
		} else if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, ".config", "git", "ignore")
		}
		if p != "" {
			data, err := hostgit.ReadText(nil, p)
			add(p, data, err)
		}
	}
	return b.String()
}

// partialMarker, in the sandbox's .git, marks a sync-in in progress.
const partialMarker = "moat-sync-in-partial"

func orDetached(branch string) string {
	if branch == "" {
		return "a detached HEAD"
	}
	return branch
}
