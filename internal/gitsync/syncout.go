package gitsync

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

// OutResult says what SyncOut brought back.
type OutResult struct {
	Commits     int      // sandbox commits now committed in the host worktree
	Uncommitted bool     // the sandbox had uncommitted changes to tracked files
	Untracked   []string // untracked sandbox files brought back (slash paths)

	// Replaced lists host files that an untracked sandbox file of the same
	// name replaced; their previous content is kept in PatchDir/replaced.
	Replaced []string

	// PatchDir is the host directory holding everything SyncOut saved. It
	// is kept (and named here) only when something failed or Replaced is
	// not empty; otherwise it is removed.
	PatchDir string

	// Failed names the step that failed: "" (none), "commits" (git am),
	// "uncommitted" (git apply) or "untracked" (copying files).
	Failed string

	// Recovery holds shell commands (with # comments) that finish the sync
	// by hand, when Failed is set.
	Recovery string

	// Refused lists what the sandbox sent that SyncOut would not write:
	// untracked paths that leave the worktree, enter .git or .moat, go
	// through a symbolic link, or repeat one (slash paths, as the sandbox
	// named them). Each is logged with the reason.
	Refused []string

	// Applied reports that SyncOut got as far as changing the host
	// worktree. When it is false after an error, nothing on the host
	// changed and SyncOut may be run again (after a dropped connection, say).
	Applied bool
}

// ErrSyncBaseNotMoved is wrapped by a SyncOut error after the commits
// landed on the host but the sandbox could not record it: a later SyncOut
// from the same sandbox would bring them again.
var ErrSyncBaseNotMoved = errors.New("moving " + SyncBaseRef + " in the sandbox failed")

// Failed step names.
const (
	StepCommits     = "commits"
	StepUncommitted = "uncommitted"
	StepUntracked   = "untracked"
)

// SyncOut brings the sandbox's work into the host worktree hostWorktree:
//
//  1. commits in base..HEAD of the sandbox, where base is refs/moat/sync-base
//     when the sandbox has it, else the host worktree's HEAD: git
//     format-patch there, git am --3way here (authors, dates and messages
//     kept; the committer is the host's identity or "moat agent");
//  2. uncommitted changes to tracked files: git diff --binary HEAD there,
//     git apply here (working tree only, binary files included);
//  3. untracked files git does not ignore (.moat/ excepted): copied.
//
// All of it is saved under <main working tree>/.moat/patches/ before
// anything is applied. After the commits land, the sandbox's
// refs/moat/sync-base moves to its HEAD, so the next SyncOut from the same
// sandbox sends only newer commits; the uncommitted changes and untracked
// files a previous SyncOut left in the worktree are taken back first when
// nobody touched them, so they are not applied twice.
//
// A step that cannot apply is a result, not an error: the worktree is left
// as the failure left it (mid-am on conflicts), locked with "git worktree
// lock" so that it is not removed, the saved files are kept, and Failed and
// Recovery say what to do. The error is for everything else: the sandbox
// or a copy failing, git failing to run.
func SyncOut(ctx context.Context, hostWorktree string, h sandbox.Handle, o Options) (OutResult, error) {
	s := newSyncer(h, o)
	res, err := s.syncOut(ctx, hostWorktree)
	if err != nil {
		return res, fmt.Errorf("sync-out: %w", err)
	}
	return res, nil
}

// out is the state of one SyncOut.
type out struct {
	*syncer
	repo      hostgit.Repo
	wt        string
	id        hostgit.Identity
	syncID    string
	sbxHead   string
	stmp      string   // sandbox temp dir
	dir       string   // host patch dir
	patches   []string // host paths of non-empty patches, in order
	changes   bool     // dir/changes.patch holds changes
	files     []untracked
	amActive  bool // a git am is stopped in the worktree
	conflict  []string
	refused   []string // what the sandbox sent that is not written (slash paths)
	notCopied []string // untracked files saved but not written into the worktree, with why
}

type untracked struct {
	rel    string // slash path
	kind   byte   // 'F' file, 'X' executable file, 'L' symlink
	target string // of a symlink
}

func (s *syncer) syncOut(ctx context.Context, hostWorktree string) (OutResult, error) {
	var res OutResult
	repo, err := hostgit.Locate(ctx, s.timeout, hostWorktree)
	if err != nil {
		return res, err
	}
	o := &out{syncer: s, repo: repo, wt: repo.TopLevel}
	hostHead, err := s.line(ctx, o.wt, "rev-parse", "--verify", "HEAD")
	if err != nil {
		return res, err
	}
	if o.id, err = hostgit.ReadIdentity(ctx, s.timeout, o.wt); err != nil {
		return res, err
	}

	// Where the sandbox is, and what the host already has.
	info, err := s.run(ctx, `h=$(`+sgit+` rev-parse --verify HEAD) || exit 1
b=$(`+sgit+` rev-parse -q --verify '`+SyncBaseRef+`^{commit}')
i=$(`+sgit+` config --get `+syncIDKey+`)
printf '%s\n%s\n%s\n' "$h" "$b" "$i"`, nil)
	if err != nil {
		return res, err
	}
	lines := strings.Split(info, "\n")
	if len(lines) < 3 || len(lines[0]) < 40 {
		return res, fmt.Errorf("unexpected answer from the sandbox: %q", info)
	}
	o.sbxHead, o.syncID = lines[0], lines[2]
	base := lines[1]
	if base == "" {
		base = hostHead
		r, err := s.exec(ctx, sgit+" cat-file -e "+hostHead+"^{commit}", nil)
		if err != nil {
			return res, err
		}
		if r.ExitCode != 0 {
			return res, fmt.Errorf("the host worktree's HEAD %s is unknown in the sandbox, which has no %s: this sandbox was not synced from %s", hostHead, SyncBaseRef, o.wt)
		}
	}

	if o.stmp, err = s.mktemp(ctx); err != nil {
		return res, err
	}
	defer s.rmTemp(ctx, o.stmp)
	patchNames, err := o.formatPatches(ctx, base)
	if err != nil {
		return res, err
	}
	size, listSize, err := o.collectWorkingState(ctx)
	if err != nil {
		return res, err
	}
	if listSize > 0 {
		list, err := o.fetchText(ctx, "untracked")
		if err != nil {
			return res, err
		}
		kinds, err := o.fetchText(ctx, "kinds")
		if err != nil {
			return res, err
		}
		if o.files, err = o.parseUntracked(list, kinds); err != nil {
			return res, err
		}
	}
	res.Refused = o.refused
	if len(patchNames) == 0 && size == 0 && len(o.files) == 0 {
		s.log("sync-out: nothing to bring back")
		return res, nil
	}

	// Save everything on the host first.
	if o.dir, err = o.makePatchDir(ctx); err != nil {
		return res, err
	}
	if err := o.save(ctx, patchNames, size); err != nil {
		return res, fmt.Errorf("%w (what was saved so far is in %s)", err, o.dir)
	}
	res.Uncommitted = o.changes
	for _, f := range o.files {
		res.Untracked = append(res.Untracked, f.rel)
	}
	s.log("sync-out: saved %d commit(s), uncommitted changes: %v, %d untracked file(s) in %s", len(o.patches), o.changes, len(o.files), o.dir)

	return o.apply(ctx, res)
}

// formatPatches writes the sandbox's new commits as patches, and their
// metadata, into the sandbox temp dir, and returns the sandbox paths of the
// patches, in order. The sandbox prints those paths, so they only say which
// sandbox file to read: save names the host copies itself.
func (o *out) formatPatches(ctx context.Context, base string) ([]string, error) {
	if base == o.sbxHead {
		return nil, nil
	}
	rng := base + ".." + o.sbxHead
	cmd := sgit + " format-patch -k --binary --no-cover-letter --no-signature --no-attach --no-thread --no-numbered" +
		" --no-color --no-ext-diff --src-prefix=a/ --dst-prefix=b/ -o " + shell.Quote(o.stmp+"/patches") + " " + rng +
		" && " + sgit + " log -z --no-use-mailmap --date=raw --format=" + shell.Quote(metaFormat) + " " + rng +
		" > " + shell.Quote(o.stmp+"/commits")
	stdout, err := o.run(ctx, cmd, nil)
	if err != nil {
		return nil, err
	}
	var names []string
	seen := map[string]bool{}
	for _, l := range strings.Split(stdout, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if !strings.HasSuffix(l, ".patch") {
			return nil, fmt.Errorf("git format-patch in the sandbox printed an unexpected file name %q", l)
		}
		if seen[l] {
			o.log("sync-out: refusing %q: git format-patch in the sandbox printed it twice", l)
			continue
		}
		seen[l] = true
		if path.Dir(l) != o.stmp+"/patches" {
			o.log("sync-out: git format-patch in the sandbox printed %q, outside its output directory %s; it is read from there all the same, and saved under a name of moat's", l, o.stmp+"/patches")
		}
		names = append(names, l)
	}
	return names, nil
}

// patchFileName is the host name of the i-th (from 0) patch, from the
// sandbox's name: a number first (so "[0-9]*.patch" finds the patches and
// nothing else moat saves), then the sandbox name's safe characters.
func patchFileName(i int, sandboxName string) string {
	base := strings.TrimSuffix(path.Base(sandboxName), ".patch")
	base = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, base)
	if len(base) > 80 {
		base = base[:80]
	}
	return fmt.Sprintf("%04d-%s.patch", i+1, strings.TrimLeft(base, "0123456789-."))
}

// fetchText copies a file of the sandbox temp dir out and returns it.
func (o *out) fetchText(ctx context.Context, name string) (string, error) {
	f, err := os.CreateTemp("", "moat-sync-"+name+"-")
	if err != nil {
		return "", err
	}
	f.Close()
	defer os.Remove(f.Name())
	if err := o.copyOut(ctx, o.stmp+"/"+name, f.Name()); err != nil {
		return "", err
	}
	data, err := os.ReadFile(f.Name())
	return string(data), err
}

// collectWorkingState writes the uncommitted diff, the untracked file list
// and each untracked entry's kind into the sandbox temp dir; it returns the
// sizes of the diff and of the list.
func (o *out) collectWorkingState(ctx context.Context) (diffSize, listSize int64, err error) {
	t := shell.Quote(o.stmp)
	// One line per listed path, in order: F file, X executable file,
	// L<hex of the link target> symbolic link, O anything else.
	classify := `for f; do
if [ -L "$f" ]; then printf L; readlink -- "$f" | od -An -v -tx1 | tr -d ' \n'; echo
elif [ -f "$f" ]; then if [ -x "$f" ]; then echo X; else echo F; fi
else echo O; fi
done`
	cmd := sgit + " diff --binary --no-color --no-ext-diff --no-textconv --src-prefix=a/ --dst-prefix=b/ HEAD > " + t + "/changes.patch" +
		" && " + sgit + " ls-files -z --others --exclude-standard > " + t + "/untracked" +
		" && xargs -0 sh -c " + shell.Quote(classify) + " sh < " + t + "/untracked > " + t + "/kinds" +
		" && wc -c < " + t + "/changes.patch && wc -c < " + t + "/untracked"
	stdout, err := o.run(ctx, cmd, nil)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(stdout)
	if len(f) == 2 {
		diffSize, err = strconv.ParseInt(f[0], 10, 64)
		if err == nil {
			listSize, err = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if len(f) != 2 || err != nil {
		return 0, 0, fmt.Errorf("unexpected sizes from the sandbox: %q", stdout)
	}
	return diffSize, listSize, nil
}

// parseUntracked pairs the NUL-separated path list with the kinds. The
// sandbox answers both, so every path is checked: one that is not a plain
// path inside the worktree and out of .git and .moat, that repeats one, or
// that lies below another listed path (which git never lists: a listed
// path is a file or a link, so nothing is below it, and a link would lead
// a copy elsewhere) is refused and logged.
func (o *out) parseUntracked(list, kinds string) ([]untracked, error) {
	paths := hostgit.SplitZ(list)
	ks := strings.Split(strings.TrimSuffix(kinds, "\n"), "\n")
	if len(paths) == 0 {
		return nil, nil
	}
	if len(ks) != len(paths) {
		return nil, fmt.Errorf("the sandbox listed %d untracked paths but classified %d", len(paths), len(ks))
	}
	listed := map[string]bool{}
	for _, p := range paths {
		listed[p] = true
	}
	seen := map[string]bool{}
	var files []untracked
	for i, p := range paths {
		if first, _, _ := strings.Cut(p, "/"); first == hostgit.MoatDir {
			continue // the sandbox's own .moat, excluded there as here
		}
		if strings.HasSuffix(p, "/") && validRel(strings.TrimSuffix(p, "/")) {
			o.log("sync-out: not bringing back %q: a nested git repository (its content is its own)", p)
			continue
		}
		why := ""
		switch {
		case !validRel(p):
			why = "not a plain relative path inside the worktree and out of .git"
		case seen[p]:
			why = "listed twice"
		case strings.EqualFold(strings.SplitN(p, "/", 2)[0], hostgit.MoatDir):
			why = "moat's own directory on a case-insensitive disk"
		default:
			for d := path.Dir(p); d != "."; d = path.Dir(d) {
				if listed[d] {
					why = "below " + d + ", which the sandbox listed as a file or link"
					break
				}
			}
		}
		seen[p] = true
		if why != "" {
			o.refuse(p, why)
			continue
		}
		k := ks[i]
		switch {
		case k == "F" || k == "X":
			files = append(files, untracked{rel: p, kind: k[0]})
		case strings.HasPrefix(k, "L"):
			t, err := hex.DecodeString(k[1:])
			if err != nil {
				return nil, fmt.Errorf("bad link target for %q from the sandbox: %q", p, k)
			}
			target := strings.TrimSuffix(string(t), "\n")
			if target == "" || strings.ContainsRune(target, 0) {
				o.refuse(p, fmt.Sprintf("a symbolic link to %q, which no file system has", target))
				continue
			}
			files = append(files, untracked{rel: p, kind: 'L', target: target})
		default:
			o.log("sync-out: skipping the untracked sandbox path %q: not a file or symbolic link", p)
		}
	}
	return files, nil
}

// refuse records an untracked path from the sandbox that is not written.
func (o *out) refuse(p, why string) {
	o.refused = append(o.refused, p)
	o.log("sync-out: refusing the untracked sandbox path %q: %s", p, why)
}

// validRel accepts a slash path that stays inside the worktree and out of
// .git, also as other file systems see names: ".git." and ".git " are .git
// on Windows, as is its short name "git~1", and HFS+ ignores some
// invisible characters (".g\u200cit" is .git there). Git refuses the same
// names in a tree.
func validRel(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsRune(p, '\\') || strings.ContainsRune(p, 0) {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." || isDotGit(c) {
			return false
		}
	}
	return filepath.IsLocal(filepath.FromSlash(p))
}

// hfsIgnored are the code points HFS+ leaves out when it compares names.
var hfsIgnored = strings.NewReplacer("\u200c", "", "\u200d", "", "\u200e", "", "\u200f", "",
	"\u202a", "", "\u202b", "", "\u202c", "", "\u202d", "", "\u202e", "",
	"\u206a", "", "\u206b", "", "\u206c", "", "\u206d", "", "\u206e", "", "\u206f", "", "\ufeff", "")

// isDotGit reports whether a path component names .git on some file
// system.
func isDotGit(c string) bool {
	c = strings.ToLower(hfsIgnored.Replace(c))
	c = strings.TrimRight(c, ". ")
	return c == ".git" || c == "git~1"
}

// makePatchDir makes <main working tree>/.moat/patches/<timestamp>-<random>.
func (o *out) makePatchDir(ctx context.Context) (string, error) {
	lctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	unlock, err := hostgit.Lock(lctx, o.repo.CommonDir)
	if err != nil {
		return "", err
	}
	err = hostgit.EnsureExcluded(o.repo.CommonDir)
	unlock()
	if err != nil {
		return "", err
	}
	parent := filepath.Join(o.repo.MainRoot, hostgit.MoatDir, "patches")
	name := time.Now().Format("20060102-150405") + "-*"
	err = os.MkdirAll(parent, 0o755)
	if err == nil {
		var dir string
		if dir, err = os.MkdirTemp(parent, name); err == nil {
			return dir, nil
		}
	}
	// The agent's work exists only in the sandbox, which is deleted next:
	// save it wherever the host lets us rather than lose it.
	dir, terr := os.MkdirTemp("", "moat-patches-"+name)
	if terr != nil {
		return "", fmt.Errorf("cannot save the agent's work on the host: %w (and in the temporary directory: %v)", err, terr)
	}
	o.log("sync-out: cannot use %s (%v); saving the agent's work in %s instead", parent, err, dir)
	return dir, nil
}

// save copies everything out of the sandbox into the patch dir. Every
// write below it goes through an os.Root, so no name or link the sandbox
// chose leads outside it; the patch files get names of moat's.
func (o *out) save(ctx context.Context, patchNames []string, size int64) error {
	root, err := os.OpenRoot(o.dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for i, p := range patchNames {
		name := patchFileName(i, p)
		dst := filepath.Join(o.dir, name)
		if err := o.copyOut(ctx, p, dst); err != nil {
			return err
		}
		data, err := root.ReadFile(name)
		if err != nil {
			return err
		}
		if !bytes.Contains(data, []byte("\ndiff --git ")) {
			// An empty commit: git am would stop on it. Kept aside.
			if err := root.MkdirAll("empty", 0o755); err != nil {
				return err
			}
			if err := root.Rename(name, filepath.Join("empty", name)); err != nil {
				return err
			}
			o.log("sync-out: %s is an empty commit; not applied (kept in %s)", name, filepath.Join(o.dir, "empty"))
			continue
		}
		o.patches = append(o.patches, dst)
	}
	if len(patchNames) > 0 {
		if err := o.copyOut(ctx, o.stmp+"/commits", filepath.Join(o.dir, metaFile)); err != nil {
			return err
		}
	}
	if size > 0 {
		if err := o.copyOut(ctx, o.stmp+"/changes.patch", filepath.Join(o.dir, "changes.patch")); err != nil {
			return err
		}
		o.changes = true
	}
	fetched, err := o.fetchUntrackedTar(ctx, root)
	if err != nil {
		o.log("sync-out: bringing the untracked files out in one archive failed (%v); copying them one by one", err)
	}
	for i, f := range o.files {
		rel := filepath.Join("untracked", filepath.FromSlash(f.rel))
		if fetched[f.rel] {
			continue
		}
		if err := root.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
			return fmt.Errorf("saving %s: %w", f.rel, err)
		}
		if f.kind == 'L' {
			if err := root.Symlink(f.target, rel); err != nil {
				return fmt.Errorf("saving %s: %w", f.rel, err)
			}
			continue
		}
		// CopyOut writes a host path itself; it gets a fresh name directly
		// in the patch dir, which the root then moves into place.
		incoming := fmt.Sprintf(".incoming-%d", i)
		if err := o.copyOut(ctx, path.Join(o.h.WorkDir(), f.rel), filepath.Join(o.dir, incoming)); err != nil {
			return err
		}
		if err := root.Rename(incoming, rel); err != nil {
			return fmt.Errorf("saving %s: %w", f.rel, err)
		}
		mode := fs.FileMode(0o644)
		if f.kind == 'X' {
			mode = 0o755
		}
		if err := root.Chmod(rel, mode); err != nil {
			return err
		}
	}
	return nil
}

// fetchUntrackedTar brings the untracked regular files out as one tar
// archive (one round trip instead of one per file, which matters over a
// real network) and unpacks them under the patch dir, through root. It
// takes only regular files it asked for, each once. It returns the files
// it saved; the caller copies the rest one by one, so a sandbox without
// GNU tar still works.
func (o *out) fetchUntrackedTar(ctx context.Context, root *os.Root) (map[string]bool, error) {
	want := map[string]byte{}
	var list strings.Builder
	for _, f := range o.files {
		if f.kind != 'L' {
			want[f.rel] = f.kind
			list.WriteString(f.rel)
			list.WriteByte(0)
		}
	}
	if len(want) < 2 {
		return nil, nil
	}
	archive := o.stmp + "/untracked.tar"
	if _, err := o.run(ctx, "tar -c -f "+shell.Quote(archive)+" --null --no-recursion -T -", strings.NewReader(list.String())); err != nil {
		return nil, err
	}
	const local = "untracked.tar"
	if err := o.copyOut(ctx, archive, filepath.Join(o.dir, local)); err != nil {
		return nil, err
	}
	defer root.Remove(local)
	f, err := root.Open(local)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	got := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return got, err
		}
		kind, ok := want[hdr.Name]
		if !ok || hdr.Typeflag != tar.TypeReg || got[hdr.Name] {
			continue // only the files asked for, each once, never a link
		}
		dst := filepath.Join("untracked", filepath.FromSlash(hdr.Name))
		if err := root.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return got, err
		}
		mode := fs.FileMode(0o644)
		if kind == 'X' {
			mode = 0o755
		}
		w, err := root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return got, err
		}
		_, err = io.Copy(w, tr)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = root.Chmod(dst, mode)
		}
		if err != nil {
			return got, err
		}
		got[hdr.Name] = true
	}
	return got, nil
}

// apply applies what was saved, step by step, stopping at the first
// failure.
func (o *out) apply(ctx context.Context, res OutResult) (OutResult, error) {
	res.Applied = true
	o.revertPrevious(ctx)

	var syncBaseErr error
	if len(o.patches) > 0 {
		if exists(filepath.Join(o.repo.GitDir, "rebase-apply")) || exists(filepath.Join(o.repo.GitDir, "rebase-merge")) {
			return o.fail(ctx, res, StepCommits, "a git am or rebase is already in progress in the worktree; finish it (git am --continue) or abort it (git am --abort) first")
		}
		before, err := o.line(ctx, o.wt, "rev-parse", "HEAD")
		if err != nil {
			return res, err
		}
		readers := make([]io.Reader, 0, len(o.patches))
		for _, p := range o.patches {
			f, err := os.Open(p)
			if err != nil {
				return res, err
			}
			defer f.Close()
			readers = append(readers, f)
		}
		args := append(o.id.Args(), "am", "--3way", "-k", "--keep-cr", "--whitespace=nowarn")
		o.log("sync-out: applying %d commit(s)", len(o.patches))
		if _, err := (hostgit.Cmd{Dir: o.wt, Args: args, Stdin: io.MultiReader(readers...), Timeout: o.timeout}).Run(ctx); err != nil {
			if ctx.Err() != nil {
				// Cut off half way: the saved work and how to finish it
				// must still be reported.
				o.amActive = exists(filepath.Join(o.repo.GitDir, "rebase-apply"))
				return o.fail(ctx, res, StepCommits, "git am was cut off by the sync-out deadline: "+err.Error())
			}
			o.amActive = exists(filepath.Join(o.repo.GitDir, "rebase-apply"))
			out, _ := o.git(context.WithoutCancel(ctx), o.wt, "diff", "--name-only", "-z", "--diff-filter=U")
			o.conflict = hostgit.SplitZ(out)
			return o.fail(ctx, res, StepCommits, "git am stopped: "+gitMessage(err))
		}
		after, err := o.line(ctx, o.wt, "rev-parse", "HEAD")
		if err != nil {
			return res, err
		}
		n, err := o.line(ctx, o.wt, "rev-list", "--count", before+".."+after)
		if err != nil {
			return res, err
		}
		res.Commits, _ = strconv.Atoi(n)
		if err := o.restoreMetadata(ctx, before, after); err != nil {
			o.log("sync-out: could not restore the commit messages git am changed: %v", err)
		}
		// Twice: after a dropped connection the second attempt redials.
		for range 2 {
			if _, syncBaseErr = o.run(ctx, sgit+" update-ref "+SyncBaseRef+" "+o.sbxHead, nil); syncBaseErr == nil {
				break
			}
		}
	}

	pre, preErr := o.snapshot(ctx)
	if o.changes {
		patch := filepath.Join(o.dir, "changes.patch")
		if _, err := o.git(ctx, o.wt, "apply", "--binary", "--whitespace=nowarn", patch); err != nil {
			if ctx.Err() != nil {
				return o.failAfter(ctx, res, StepUncommitted, "git apply was cut off by the sync-out deadline: "+err.Error(), syncBaseErr)
			}
			return o.failAfter(ctx, res, StepUncommitted, "git apply of the uncommitted changes failed: "+gitMessage(err), syncBaseErr)
		}
	}
	if len(o.files) > 0 {
		replaced, err := o.copyUntracked()
		res.Replaced, res.Refused = replaced, o.refused
		if err != nil {
			return o.failAfter(ctx, res, StepUntracked, "copying the untracked files failed: "+err.Error(), syncBaseErr)
		}
		if len(o.notCopied) > 0 {
			res.Untracked = slices.DeleteFunc(res.Untracked, func(p string) bool { return slices.Contains(o.refused, p) })
			return o.failAfter(ctx, res, StepUntracked, "these untracked files were not written into the worktree:\n  "+strings.Join(o.notCopied, "\n  "), syncBaseErr)
		}
	}
	if preErr == nil {
		o.recordState(ctx, pre)
	}
	if len(res.Replaced) > 0 {
		res.PatchDir = o.dir
		if len(res.Replaced) > 0 {
			o.log("sync-out: replaced %d existing host file(s); their old content is in %s", len(res.Replaced), filepath.Join(o.dir, "replaced"))
		}
	} else {
		o.removePatchDir()
	}
	if syncBaseErr != nil {
		return res, fmt.Errorf("the commits landed in %s, but %w, so the next sync-out from this sandbox would send them again (run there: git update-ref %s %s): %w",
			o.wt, ErrSyncBaseNotMoved, SyncBaseRef, o.sbxHead, syncBaseErr)
	}
	return res, nil
}

func (o *out) failAfter(ctx context.Context, res OutResult, step, why string, syncBaseErr error) (OutResult, error) {
	res, _ = o.fail(ctx, res, step, why)
	if syncBaseErr != nil {
		return res, fmt.Errorf("%w (run there: git update-ref %s %s): %w", ErrSyncBaseNotMoved, SyncBaseRef, o.sbxHead, syncBaseErr)
	}
	return res, nil
}

// fail records a failed step: the patch dir is kept, the worktree locked so
// that nobody removes it, and recovery commands written.
func (o *out) fail(ctx context.Context, res OutResult, step, why string) (OutResult, error) {
	ctx = context.WithoutCancel(ctx)
	res.Failed, res.PatchDir = step, o.dir
	o.clearState()
	locked := false
	if o.repo.GitDir != o.repo.CommonDir { // a linked worktree; the main one cannot be locked
		reason := "moat sync-out failed; saved work in " + o.dir
		if _, err := o.git(ctx, o.wt, "worktree", "lock", "--reason", reason, o.wt); err == nil {
			locked = true
		} else {
			o.log("sync-out: could not lock the worktree: %v", err)
		}
	}
	res.Recovery = o.recovery(step, why, locked)
	o.log("sync-out: %s\n%s", why, res.Recovery)
	return res, nil
}

// recovery writes the commands that finish the sync by hand.
func (o *out) recovery(step, why string, locked bool) string {
	q := shell.Quote
	git := "git"
	if !o.id.Configured {
		git += " -c user.name=" + q(o.id.Name) + " -c user.email=" + q(o.id.Email)
	}
	var l []string
	for _, w := range strings.Split(why, "\n") {
		l = append(l, "# "+w)
	}
	l = append(l, "# Everything from the sandbox is saved in "+o.dir, "cd "+q(o.wt))
	switch step {
	case StepCommits:
		if o.amActive {
			if len(o.conflict) > 0 {
				qs := make([]string, len(o.conflict))
				for i, f := range o.conflict {
					qs[i] = q(f)
				}
				l = append(l, "# Resolve the conflicts in "+strings.Join(o.conflict, ", ")+", then:",
					"git add -- "+strings.Join(qs, " "))
			} else {
				l = append(l, "# git am could not apply a patch (git am --show-current-patch=diff shows it):",
					"# apply it by hand (git apply --3way or --reject), git add the files, then:")
			}
			l = append(l, git+" am --continue",
				"# (repeat for each commit git am stops on; git am --skip drops a patch already applied,",
				"#  git am --abort gives up: the patches stay in "+o.dir+")")
		} else {
			l = append(l, git+" am --3way -k --keep-cr --whitespace=nowarn "+q(o.dir)+"/[0-9]*.patch")
		}
		if o.changes {
			l = append(l, "git apply --binary --whitespace=nowarn "+q(filepath.Join(o.dir, "changes.patch")))
		}
		if len(o.files) > 0 {
			l = append(l, o.untrackedRecovery()...)
		}
	case StepUncommitted:
		l = append(l, "# apply what applies; hunks that do not are left in *.rej files to merge by hand:",
			"git apply --binary --whitespace=nowarn --reject "+q(filepath.Join(o.dir, "changes.patch")))
		if len(o.files) > 0 {
			l = append(l, o.untrackedRecovery()...)
		}
	case StepUntracked:
		l = append(l, o.untrackedRecovery()...)
	}
	if locked {
		l = append(l, "git worktree unlock "+q(o.wt))
	}
	l = append(l, "rm -rf "+q(o.dir))
	return strings.Join(l, "\n") + "\n"
}

// untrackedRecovery copies the saved untracked files into the worktree.
// Not cp: it writes through a symbolic link it finds in the way (one a
// patch from the sandbox may have made); tar replaces the link instead.
func (o *out) untrackedRecovery() []string {
	return []string{
		"# the untracked files (tar replaces a symbolic link in the way rather than write through it):",
		"(cd " + shell.Quote(filepath.Join(o.dir, "untracked")) + " && tar -cf - .) | tar -xpf -",
	}
}

// copyUntracked copies the saved untracked files into the worktree through
// an os.Root, so no path or link leads outside it, and, as git does, writes
// nothing beyond a symbolic link, not even one inside the worktree (a link
// to .git, say). A different existing file is replaced after its content is
// saved in the patch dir. A file that cannot be written is skipped and
// recorded in o.notCopied; the others still land. The error is for the
// worktree itself failing.
func (o *out) copyUntracked() (replaced []string, err error) {
	root, err := os.OpenRoot(o.wt)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	skip := func(f untracked, why string) {
		o.notCopied = append(o.notCopied, f.rel+": "+why)
		o.refused = append(o.refused, f.rel)
		o.log("sync-out: not writing the untracked file %q into the worktree: %s (it is kept in %s)", f.rel, why, filepath.Join(o.dir, "untracked"))
	}
	for _, f := range o.files {
		rel := filepath.FromSlash(f.rel)
		src := filepath.Join(o.dir, "untracked", rel)
		if why := blockedParent(root, f.rel); why != "" {
			skip(f, why)
			continue
		}
		if dir := filepath.Dir(rel); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				skip(f, err.Error())
				continue
			}
		}
		if fi, err := root.Lstat(rel); err == nil {
			same, err := sameEntry(root, rel, fi, src)
			if err != nil {
				skip(f, err.Error())
				continue
			}
			if same {
				continue
			}
			if fi.IsDir() {
				skip(f, "the host worktree has a directory there")
				continue
			}
			if err := backup(root, rel, filepath.Join(o.dir, "replaced", rel), fi); err != nil {
				skip(f, "saving the host's version: "+err.Error())
				continue
			}
			replaced = append(replaced, f.rel)
			if err := root.Remove(rel); err != nil {
				skip(f, err.Error())
				continue
			}
		}
		if f.kind == 'L' {
			if err := root.Symlink(f.target, rel); err != nil {
				skip(f, err.Error())
			}
			continue
		}
		mode := fs.FileMode(0o644)
		if f.kind == 'X' {
			mode = 0o755
		}
		if err := copyFileTo(root, src, rel, mode); err != nil {
			skip(f, err.Error())
		}
	}
	return replaced, nil
}

// blockedParent says why a directory above the slash path rel in the
// worktree must not be written into: it is a symbolic link or not a
// directory. "" when every existing one is a plain directory.
func blockedParent(root *os.Root, rel string) string {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		d := strings.Join(parts[:i], "/")
		fi, err := root.Lstat(filepath.FromSlash(d))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "" // made below, as a directory
		case err != nil:
			return err.Error()
		case fi.Mode()&fs.ModeSymlink != 0:
			return d + " is a symbolic link in the worktree"
		case !fi.IsDir():
			return d + " is a file in the worktree"
		}
	}
	return ""
}

// sameEntry reports whether the worktree entry rel already equals src.
func sameEntry(root *os.Root, rel string, fi fs.FileInfo, src string) (bool, error) {
	sfi, err := os.Lstat(src)
	if err != nil {
		return false, err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0 && sfi.Mode()&fs.ModeSymlink != 0:
		a, err1 := root.Readlink(rel)
		b, err2 := os.Readlink(src)
		return err1 == nil && err2 == nil && a == b, nil
	case fi.Mode().IsRegular() && sfi.Mode().IsRegular():
		if fi.Size() != sfi.Size() || fi.Mode().Perm()&0o100 != sfi.Mode().Perm()&0o100 {
			return false, nil
		}
		a, err := root.ReadFile(rel)
		if err != nil {
			return false, err
		}
		b, err := os.ReadFile(src)
		return bytes.Equal(a, b), err
	}
	return false, nil
}

func backup(root *os.Root, rel, dst string, fi fs.FileInfo) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := root.Readlink(rel)
		if err != nil {
			return err
		}
		return os.Symlink(t, dst)
	}
	data, err := root.ReadFile(rel)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, fi.Mode().Perm())
}

func copyFileTo(root *os.Root, src, rel string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Chmod(rel, mode)
	}
	return err
}

// removePatchDir removes the patch dir and, when empty, .moat/patches.
func (o *out) removePatchDir() {
	if err := os.RemoveAll(o.dir); err != nil {
		o.log("sync-out: could not remove %s: %v", o.dir, err)
		return
	}
	// .moat/patches goes too when empty (Remove fails otherwise); not the
	// temporary directory a fallback patch dir lives in.
	if parent := filepath.Dir(o.dir); parent == filepath.Join(o.repo.MainRoot, hostgit.MoatDir, "patches") {
		_ = os.Remove(parent)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// gitMessage is what a failed git command said (its first lines), or the
// error itself when git did not get to say anything.
func gitMessage(err error) string {
	var ge *hostgit.Error
	msg := err.Error()
	if errors.As(err, &ge) {
		if m := strings.TrimSpace(ge.Stderr + "\n" + ge.Stdout); m != "" {
			msg = m
		}
	}
	ls := strings.SplitN(msg, "\n", 9)
	if len(ls) > 8 {
		ls = append(ls[:8], "...")
	}
	return strings.Join(ls, "\n")
}
