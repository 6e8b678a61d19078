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
	// Base is the run's base, from PackBase.
	Base Base
	// Branch is checked out in the sandbox at Base.Head; "" leaves HEAD
	// detached there.
	Branch string
	// Identity becomes the sandbox repository's user.name and user.email.
	Identity hostgit.Identity
	// Excludes are added to the sandbox's .git/info/exclude (HostExcludes).
	Excludes string
}

// SyncIn makes the sandbox repository at h.WorkDir() from in.Base: one
// Exec whose standard input is the base's pack and index as a tar stream,
// read from the host's disk as it is sent, and which makes the sandbox
// repository in the same command (git init, the pack filed away,
// refs/moat/sync-base at the head, checkout of in.Branch, the identity, a
// sync id, the excludes), its HEAD verified against the host's.
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
	stream := in.Base.tarStream()
	defer stream.Close()
	s.log("sync-in: %s (%s) into the sandbox", in.Base.Head[:12], bytesText(in.Base.Size))
	out, err := s.run(ctx, syncInScript(in), stream)
	if err != nil {
		return err
	}
	got := ""
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "moat-head "); ok {
			got = strings.TrimSpace(v)
		}
	}
	if got != in.Base.Head {
		return fmt.Errorf("HEAD mismatch after sync-in: host %s, sandbox %q", in.Base.Head, hostgit.Tail(out, 200))
	}
	return nil
}

// syncInScript is the one sandbox command of SyncIn. It starts as few
// processes as it can: files git would write the same way (HEAD of the
// fresh repository, the identity in .git/config) are written by the shell.
// The fresh repository is made in git's files ref format and SHA-1, which
// is what those writes and the pack assume, whatever the sandbox's git
// defaults to.
func syncInScript(in In) string {
	q := shell.Quote
	checkout := "g -c advice.detachedHead=false checkout -q --detach " + SyncBaseRef
	if in.Branch != "" {
		checkout = "g -c advice.detachedHead=false checkout -q -B " + q(in.Branch) + " " + SyncBaseRef
	}
	config := "[user]\n\tname = " + configValue(in.Identity.Name) + "\n\temail = " + configValue(in.Identity.Email) +
		"\n[" + syncIDSection + "]\n\t" + syncIDName + " = " + randHex(8) + "\n"
	return gitFunc + `
h=` + in.Base.Head + `
if [ -e .git/` + partialMarker + ` ]; then rm -rf .git; fi
if [ -e .git ]; then
	cat >/dev/null
	if [ "$(g rev-parse -q --verify HEAD)" = "$h" ] && [ "$(g rev-parse -q --verify ` + SyncBaseRef + `)" = "$h" ]; then
		echo "moat-head $h"; exit 0
	fi
	echo "the sandbox directory $PWD already holds a git repository; sync-in needs a fresh sandbox" >&2; exit 3
fi
mkdir .git && : > .git/` + partialMarker + ` && GIT_DEFAULT_HASH=sha1 g -c init.defaultRefFormat=files init -q || exit 1
echo 'ref: refs/heads/moat-sync-in-unborn' > .git/HEAD || exit 1
if [ ! -O . ] && ! g rev-parse --git-dir >/dev/null 2>.git/moat-err; then
	grep -q 'dubious ownership' .git/moat-err || { cat .git/moat-err >&2; exit 1; }
	# safe.directory counts only in global configuration: the sandbox's.
	git config --global --add safe.directory "$PWD" || exit 1
fi
tar -xf - -C .git/objects/pack || exit 1
g update-ref ` + SyncBaseRef + ` "$h" || exit 1
` + checkout + ` || exit 1
printf '%s' ` + q(config) + ` >> .git/config || exit 1
[ -d .git/info ] || mkdir .git/info || exit 1
printf '%s' ` + q(in.Excludes) + ` >> .git/info/exclude || exit 1
rm -f .git/` + partialMarker + ` .git/moat-err
echo "moat-head $(g rev-parse HEAD)"
`
}

// configValue quotes s as a value in a git config file.
func configValue(s string) string {
	r := strings.NewReplacer("\\", "\\\\", `"`, `\"`, "\n", `\n`, "\t", `\t`, "\b", `\b`)
	return `"` + r.Replace(s) + `"`
}

// gitFunc defines g, the sandbox's git for moat's own commands: it
// overrides configuration the agent could have set that would change the
// output moat parses or run programs moat did not ask for, and reads
// objects as they are (no refs/replace/: an agent's replacement must not
// make a big file look small to the limits).
const gitFunc = `g() { git --no-replace-objects -c core.quotePath=false -c log.showSignature=false -c color.ui=false -c core.hooksPath=/dev/null -c core.fsmonitor=false -c commit.gpgSign=false "$@"; }`

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
