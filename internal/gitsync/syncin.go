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

// In says what SyncIn makes in the sandbox.
type In struct {
	// Bundle is the run's base, from MakeBundle.
	Bundle Bundle
	// Branch is checked out in the sandbox at Bundle.Head; "" leaves HEAD
	// detached there.
	Branch string
	// Identity becomes the sandbox repository's user.name and user.email.
	Identity hostgit.Identity
	// Excludes are added to the sandbox's .git/info/exclude (HostExcludes).
	Excludes string
}

// SyncIn makes the sandbox repository at h.WorkDir() from in.Bundle: one
// Exec whose standard input is the bundle, so the bundle is written into
// the sandbox as it is read from the host's disk, and the sandbox
// repository is made in the same command (git init, fetch from the bundle,
// checkout of in.Branch, the identity, a sync id, the excludes, and
// refs/moat/sync-base at the head), its HEAD verified against the host's.
//
// WorkDir must not hold a repository yet; other files in it are kept. A
// repository an interrupted SyncIn left is started over, and one a SyncIn
// whose answer was lost finished is taken as done, so SyncIn may be
// retried after a dropped connection.
func SyncIn(ctx context.Context, h sandbox.Handle, in In, o Options) error {
	s := newSyncer(h, o)
	if err := s.syncIn(ctx, in); err != nil {
		return fmt.Errorf("sync-in: %w", err)
	}
	return nil
}

func (s *syncer) syncIn(ctx context.Context, in In) error {
	f, err := os.Open(in.Bundle.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	q := shell.Quote
	checkout := "g -c advice.detachedHead=false checkout -q --detach " + SyncBaseRef
	if in.Branch != "" {
		checkout = "g -c advice.detachedHead=false checkout -q -B " + q(in.Branch) + " " + SyncBaseRef
	}
	script := gitFunc + `
h=` + in.Bundle.Head + `
if [ -e .git/` + partialMarker + ` ]; then rm -rf .git; fi
if [ -e .git ]; then
	cat >/dev/null
	if [ "$(g rev-parse -q --verify HEAD)" = "$h" ] && [ "$(g rev-parse -q --verify ` + SyncBaseRef + `)" = "$h" ]; then
		echo "moat-head $h"; exit 0
	fi
	echo "the sandbox directory $PWD already holds a git repository; sync-in needs a fresh sandbox" >&2; exit 3
fi
t=$(mktemp -d "${TMPDIR:-/tmp}/moat-sync-XXXXXX") || exit 1
trap 'rm -rf "$t"' EXIT
cat > "$t/in.bundle" || exit 1
mkdir -p .git && : > .git/` + partialMarker + ` && g init -q && g symbolic-ref HEAD refs/heads/moat-sync-in-unborn || exit 1
if ! g rev-parse --git-dir >/dev/null 2>"$t/err"; then
	grep -q 'dubious ownership' "$t/err" || { cat "$t/err" >&2; exit 1; }
	# safe.directory counts only in global configuration: the sandbox's.
	git config --global --add safe.directory "$PWD" || exit 1
fi
g fetch -q --no-tags --no-write-fetch-head "$t/in.bundle" ` + q("+"+in.Bundle.Ref+":"+SyncBaseRef) + ` || exit 1
` + checkout + ` || exit 1
g config user.name ` + q(in.Identity.Name) + ` && g config user.email ` + q(in.Identity.Email) + ` && g config ` + syncIDKey + ` ` + randHex(8) + ` || exit 1
mkdir -p .git/info && printf '%s' ` + q(in.Excludes) + ` >> .git/info/exclude || exit 1
rm -f .git/` + partialMarker + `
echo "moat-head $(g rev-parse HEAD)"
`
	s.log("sync-in: %s (%s) into the sandbox", in.Bundle.Head[:12], bytesText(in.Bundle.Size))
	out, err := s.run(ctx, script, f)
	if err != nil {
		return err
	}
	got := ""
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "moat-head "); ok {
			got = strings.TrimSpace(v)
		}
	}
	if got != in.Bundle.Head {
		return fmt.Errorf("HEAD mismatch after sync-in: host %s, sandbox %q", in.Bundle.Head, hostgit.Tail(out, 200))
	}
	return nil
}

// gitFunc defines g, the sandbox's git for moat's own commands: it
// overrides configuration the agent could have set that would change the
// output moat parses or run programs moat did not ask for.
const gitFunc = `g() { git -c core.quotePath=false -c log.showSignature=false -c color.ui=false -c core.hooksPath=/dev/null -c core.fsmonitor=false -c commit.gpgSign=false "$@"; }`

// HostExcludes returns the exclude patterns the host applies besides
// .gitignore files, so the sandbox ignores the same untracked files, and
// /.moat/. Their content goes into the sandbox, so the repository must
// not choose what host file is read: info/exclude is read only if it (or a
// link it is) stays inside the git directory, and a core.excludesFile that
// only the repository's own configuration sets only if it is inside the
// repository (one in the user's global or system configuration is the
// user's choice).
func HostExcludes(ctx context.Context, repo hostgit.Repo, o Options) string {
	s := newSyncer(nil, o)
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

// ExcludeSetupFiles hides from git, in the sandbox's .git/info/exclude,
// the untracked files that are there now: what CopyToWorktree copied in
// and setup hooks made (.env, node_modules, build output). They are the
// sandbox's furniture, not the agent's work, so SyncOut's commit of what
// the agent left uncommitted must not take them home.
func ExcludeSetupFiles(ctx context.Context, h sandbox.Handle, o Options) error {
	s := newSyncer(h, o)
	// Anchored patterns with git's wildcard characters escaped; names git
	// had to quote (control characters, quotes) cannot be written as a
	// pattern and stay visible.
	_, err := s.run(ctx, gitFunc+`
g ls-files --others --exclude-standard --directory | grep -v '^"' | sed -e 's/[][*?\\!#]/\\&/g' -e 's|^|/|' > .git/moat-setup-files || exit 1
if [ -s .git/moat-setup-files ]; then
	{ echo '# made by moat setup (copies, hooks)'; cat .git/moat-setup-files; } >> .git/info/exclude
fi
rm -f .git/moat-setup-files`, nil)
	if err != nil {
		return fmt.Errorf("sync-in: %w", err)
	}
	return nil
}
