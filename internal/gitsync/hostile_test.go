package gitsync

// Hostile sync-out answers. The sandbox belongs to the agent: everything it
// answers during SyncOut (the untracked list and kinds, the tar archive of
// untracked files, the file names format-patch prints, the patches, the
// diff of uncommitted changes, link targets) may be forged. forger wraps a
// real local sandbox and substitutes such answers; every file it forges is
// still written on the host by the real provider's CopyOut, so the host
// side is exercised exactly as in production.
//
// Each test snapshots the test's whole temporary tree (which holds the
// user's repository with its .git, the host worktree, and an "outside"
// directory with a file the agent would like to overwrite) before and
// after, and asserts that nothing changed outside the worktree except what
// git itself legitimately updates (objects, refs, logs, the worktree's
// index and git directory) and moat's patch directory.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/worktree"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

// forger is a sandbox whose answers to SyncOut are partly forged.
type forger struct {
	sandbox.Handle
	t  *testing.T
	mu sync.Mutex
	n  int
	// stdout rewrites the standard output of a command containing the key.
	stdout map[string]func(real string) string
	// failing makes a command containing one of these exit 1.
	failing []string
	// files forges the content CopyOut delivers for a sandbox path ending
	// with the key.
	files map[string][]byte
	// missing forges "FORGED <path>" for sandbox paths that do not exist.
	missing bool
}

func newForger(t *testing.T, h sandbox.Handle) *forger {
	return &forger{Handle: h, t: t, stdout: map[string]func(string) string{}, files: map[string][]byte{}}
}

// scratch is a host directory outside the watched tree.
func scratch(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "moat-forged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (f *forger) Exec(ctx context.Context, cmd string, o sandbox.ExecOptions) (sandbox.ExecResult, error) {
	res, err := f.Handle.Exec(ctx, cmd, o)
	if err != nil {
		return res, err
	}
	for k, rewrite := range f.stdout {
		if strings.Contains(cmd, k) {
			res.Stdout = rewrite(res.Stdout)
		}
	}
	for _, k := range f.failing {
		if strings.Contains(cmd, k) {
			res.ExitCode, res.Stderr = 1, "forged failure"
		}
	}
	return res, nil
}

func (f *forger) CopyOut(ctx context.Context, sandboxPath, hostPath string) error {
	for suffix, content := range f.files {
		if strings.HasSuffix(sandboxPath, suffix) {
			return f.deliver(ctx, content, hostPath)
		}
	}
	err := f.Handle.CopyOut(ctx, sandboxPath, hostPath)
	if err != nil && f.missing {
		return f.deliver(ctx, []byte("FORGED "+sandboxPath), hostPath)
	}
	return err
}

// deliver puts content into the sandbox (inside .git, where git lists no
// untracked file) and has the real provider copy it out to hostPath.
func (f *forger) deliver(ctx context.Context, content []byte, hostPath string) error {
	f.mu.Lock()
	f.n++
	n := f.n
	f.mu.Unlock()
	tmp := filepath.Join(scratch(f.t), "forged")
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		return err
	}
	sp := fmt.Sprintf("%s/.git/moat-forged-%d", f.Handle.WorkDir(), n)
	if err := f.Handle.CopyIn(ctx, tmp, sp); err != nil {
		return err
	}
	return f.Handle.CopyOut(ctx, sp, hostPath)
}

// snap describes every entry under a directory: mode and content digest,
// or link target.
type snap map[string]string

func takeSnap(t *testing.T, root string, skip func(rel string) bool) snap {
	t.Helper()
	s := snap{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel != "." && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			s[rel] = "link " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			s[rel] = fmt.Sprintf("file %v %s", fi.Mode(), hex.EncodeToString(sum[:8]))
		default:
			s[rel] = "dir " + fi.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// changes lists what differs between two snapshots.
func (a snap) changes(b snap) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			out = append(out, "removed "+k)
		} else if v != w {
			out = append(out, "changed "+k+": "+v+" -> "+w)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, "added "+k+" ("+b[k]+")")
		}
	}
	slices.Sort(out)
	return out
}

// watch is the part of the file system a hostile sync must not touch.
type watch struct {
	t       *testing.T
	root    string // the test's temporary tree
	repo    string
	w       *worktree.Worktree
	outside string // a directory outside the repository, with a file "target"
	before  snap
	logs    *strings.Builder
	mu      *sync.Mutex
}

func newWatch(t *testing.T) (*watch, sandbox.Handle) {
	t.Helper()
	repo, w, h := setup(t)
	outside := t.TempDir()
	if r, err := filepath.EvalSymlinks(outside); err == nil {
		outside = r
	}
	write(t, outside, "target", "the user's file\n")
	// Hooks in the user's repository that would show up if git ran them.
	write(t, repo, ".git/hooks/post-checkout", "#!/bin/sh\ntouch "+outside+"/hook-ran\n")
	os.Chmod(filepath.Join(repo, ".git", "hooks", "post-checkout"), 0o755)
	wa := &watch{t: t, root: filepath.Dir(repo), repo: repo, w: w, outside: outside, logs: &strings.Builder{}, mu: &sync.Mutex{}}
	if filepath.Dir(outside) != wa.root {
		t.Fatalf("temporary directories %s and %s are not siblings", repo, outside)
	}
	wa.before = wa.take()
	return wa, h
}

func (wa *watch) take() snap {
	repoRel := filepath.Base(wa.repo)
	wtRel, err := filepath.Rel(wa.root, wa.w.Path)
	if err != nil {
		wa.t.Fatal(err)
	}
	wtRel = filepath.ToSlash(wtRel)
	gitOwn := []string{"objects", "refs", "logs", "worktrees", "index", "ORIG_HEAD", "packed-refs", "FETCH_HEAD", "moat.lock"}
	return takeSnap(wa.t, wa.root, func(rel string) bool {
		if rel == wtRel || strings.HasPrefix(rel, wtRel+"/") || rel == repoRel+"/.moat/patches" || strings.HasPrefix(rel, repoRel+"/.moat/patches/") {
			return true
		}
		for _, g := range gitOwn {
			if rel == repoRel+"/.git/"+g || strings.HasPrefix(rel, repoRel+"/.git/"+g+"/") {
				return true
			}
		}
		return false
	})
}

// check fails the test when anything outside the worktree changed, apart
// from the entries allowed (slash paths relative to the test's tree).
func (wa *watch) check(allowed ...string) { wa.checkT(wa.t, allowed...) }

func (wa *watch) checkT(t *testing.T, allowed ...string) {
	t.Helper()
	var bad []string
	for _, c := range wa.before.changes(wa.take()) {
		ok := false
		for _, a := range allowed {
			if strings.Contains(c, " "+a) {
				ok = true
			}
		}
		if !ok {
			bad = append(bad, c)
		}
	}
	if len(bad) > 0 {
		t.Errorf("the sync wrote outside the worktree:\n  %s", strings.Join(bad, "\n  "))
	}
	if got := read(t, wa.outside, "target"); got != "the user's file\n" {
		t.Errorf("outside/target = %q", got)
	}
}

func (wa *watch) opts() Options {
	return Options{Timeout: opts(wa.t).Timeout, Logf: func(f string, a ...any) {
		wa.mu.Lock()
		defer wa.mu.Unlock()
		line := fmt.Sprintf(f, a...)
		wa.logs.WriteString(line + "\n")
		wa.t.Log(line)
	}}
}

func (wa *watch) logged(want ...string) {
	wa.t.Helper()
	wa.mu.Lock()
	defer wa.mu.Unlock()
	for _, w := range want {
		if !strings.Contains(wa.logs.String(), w) {
			wa.t.Errorf("the log does not name %q", w)
		}
	}
}

// resetWorktree undoes a failed sync so the next one starts clean, with
// the sandbox sending its commits again.
func (wa *watch) resetWorktree(t *testing.T, h sandbox.Handle, res OutResult) {
	t.Helper()
	sx(t, h, "git update-ref "+SyncBaseRef+" "+wa.w.BaseHead)
	hostgit.Run(t.Context(), time.Minute, wa.w.Path, "am", "--abort") // when one is stopped
	hostgit.Run(t.Context(), time.Minute, wa.repo, "worktree", "unlock", wa.w.Path)
	git(t, wa.w.Path, "reset", "-q", "--hard", wa.w.BaseHead)
	git(t, wa.w.Path, "clean", "-q", "-fdx")
	if res.PatchDir != "" {
		os.RemoveAll(res.PatchDir)
	}
}

func nulList(paths ...string) string { return strings.Join(paths, "\x00") + "\x00" }

func linkKind(target string) string { return "L" + hex.EncodeToString([]byte(target)) }

// TestHostileUntrackedList: the untracked list and kinds are forged, and
// the archive step fails so every file goes the one-by-one way.
func TestHostileUntrackedList(t *testing.T) {
	wa, h := newWatch(t)
	sx(t, h, `echo legit > legit.txt && echo legit2 > legit2.txt && mkdir -p sub && printf '#!/bin/sh\n' > sub/tool.sh`)
	f := newForger(t, h)
	f.failing = []string{"tar -c"}
	f.missing = true
	type entry struct{ path, kind string }
	entries := []entry{
		{"legit.txt", "F"},
		{"../../x", "F"},
		{wa.outside + "/abs", "F"},
		{"a/../../x", "F"},
		{".git/config", "F"},
		{".git/hooks/post-checkout", "X"},
		{".GIT/hooks/pre-commit", "X"},
		{".git./hooks/pre-commit", "X"}, // the same directory on Windows
		{"git~1/hooks/pre-commit", "X"}, // its 8.3 short name
		{".moat/x", "F"},
		{".Moat/patches/x", "F"}, // .moat on a case-insensitive disk
		{"link", linkKind(wa.outside)},
		{"link/pwned", "F"},
		{"link2", linkKind("../../../..")},
		{"link2/pwned2", "F"},
		{"dotgit", linkKind(".git")},
		{"dotgit/hooks/post-merge", "X"},
		{"dup.txt", "F"},
		{"dup.txt", "F"},
		{"nul-link", linkKind("a\x00b")},
		{"nested/", "O"}, // a nested repository: skipped, not refused
		{"legit2.txt", "F"},
		{"sub/tool.sh", "X"},
	}
	var paths, kinds []string
	for _, e := range entries {
		paths = append(paths, e.path)
		kinds = append(kinds, e.kind)
	}
	f.files["/untracked"] = []byte(nulList(paths...))
	f.files["/kinds"] = []byte(strings.Join(kinds, "\n") + "\n")

	res, err := SyncOut(t.Context(), wa.w.Path, f, wa.opts())
	t.Logf("result %+v, err %v", res, err)
	wa.check()
	if err != nil {
		t.Fatalf("SyncOut: %v", err)
	}
	// The legitimate files landed, once each, with their modes.
	if read(t, wa.w.Path, "legit.txt") != "legit\n" || read(t, wa.w.Path, "legit2.txt") != "legit2\n" || !strings.HasPrefix(read(t, wa.w.Path, "dup.txt"), "FORGED") {
		t.Error("legitimate untracked files did not land")
	}
	if fi, err := os.Stat(filepath.Join(wa.w.Path, "sub", "tool.sh")); err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("sub/tool.sh: %v", err)
	}
	// Links are content: they land as links, and nothing was written
	// through them.
	if l, err := os.Readlink(filepath.Join(wa.w.Path, "link")); err != nil || l != wa.outside {
		t.Errorf("link = %q, %v", l, err)
	}
	for _, p := range []string{"link/pwned", "link2/pwned2", "dotgit/hooks/post-merge", ".git/config"} {
		if fi, err := os.Lstat(filepath.Join(wa.w.Path, p)); err == nil && fi.Mode().IsRegular() {
			t.Errorf("%s was written", p)
		}
	}
	if !slices.Contains(res.Refused, "link/pwned") || !slices.Contains(res.Refused, "../../x") || !slices.Contains(res.Refused, ".git/config") {
		t.Errorf("Refused = %q", res.Refused)
	}
	wa.logged("../../x", ".git/config", "link/pwned", "link2/pwned2", "dotgit/hooks/post-merge", "dup.txt", ".Moat/patches/x", "git~1/hooks/pre-commit", "nul-link", "nested/")
	if slices.Contains(res.Refused, "nested/") {
		t.Error("a nested repository is refused, not skipped")
	}
}

// tarOf builds an archive from headers and contents.
func tarOf(t *testing.T, entries ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for i := 0; i < len(entries); i += 2 {
		hdr := entries[i].(*tar.Header)
		body := entries[i+1].(string)
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(body))
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			tw.Write([]byte(body))
		}
	}
	tw.Close()
	return b.Bytes()
}

// TestHostileUntrackedArchive: the tar archive of untracked files is
// forged: entries outside, absolute, through "..", hard and symbolic
// links, duplicates.
func TestHostileUntrackedArchive(t *testing.T) {
	wa, h := newWatch(t)
	sx(t, h, `echo real-a > ua.txt && echo real-b > ub.txt && echo real-c > uc.txt && mkdir -p d && echo real-e > d/e.txt`)
	f := newForger(t, h)
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }
	f.files["/untracked.tar"] = tarOf(t,
		reg("../../x"), "PWNED",
		reg(wa.outside+"/tarabs"), "PWNED",
		reg("a/../../x"), "PWNED",
		reg(".git/hooks/post-checkout"), "PWNED",
		&tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: wa.outside}, "",
		reg("d/e.txt"), "through the link",
		&tar.Header{Name: "ua.txt", Typeflag: tar.TypeLink, Linkname: wa.outside + "/target"}, "",
		&tar.Header{Name: "ub.txt", Typeflag: tar.TypeSymlink, Linkname: wa.outside + "/target"}, "",
		reg("uc.txt"), "first",
		reg("uc.txt"), "second",
		reg("ua.txt"), "tar-a",
	)
	res, err := SyncOut(t.Context(), wa.w.Path, f, wa.opts())
	t.Logf("result %+v, err %v", res, err)
	wa.check()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"ua.txt": "tar-a", "ub.txt": "real-b\n", "uc.txt": "first", "d/e.txt": "through the link"} {
		p := filepath.Join(wa.w.Path, filepath.FromSlash(name))
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s is not a regular file: %v", name, err)
			continue
		}
		if got := read(t, wa.w.Path, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// TestHostilePatchNames: format-patch "prints" names outside its directory,
// absolute, duplicated, or clashing with moat's own files.
func TestHostilePatchNames(t *testing.T) {
	wa, h := newWatch(t)
	sx(t, h, `echo one > one.txt && git add one.txt && git commit -qm one && echo two > two.txt && git add two.txt && git commit -qm two && echo wip >> one.txt`)
	f := newForger(t, h)
	f.stdout["format-patch"] = func(real string) string {
		names := strings.Fields(real)
		if len(names) != 2 {
			t.Errorf("format-patch printed %q", real)
			return real
		}
		dir := path.Dir(names[0])
		forged := []string{names[0], "/etc/changes.patch", dir + "/../../commits.meta.patch", names[1], names[1]}
		return strings.Join(forged, "\n") + "\n"
	}
	f.files["/etc/changes.patch"] = []byte("not a patch\n")
	f.files["/commits.meta.patch"] = []byte("not a patch either\n")
	res, err := SyncOut(t.Context(), wa.w.Path, f, wa.opts())
	t.Logf("result %+v, err %v", res, err)
	wa.check()
	if err != nil {
		t.Fatal(err)
	}
	// The files behind the odd names hold no diff (empty commits, kept
	// aside); the two real commits land once each, and the uncommitted
	// change is applied: nothing the sandbox named overwrote moat's own
	// changes.patch or commits.meta.
	if res.Commits != 2 || !res.Uncommitted || res.Failed != "" {
		t.Errorf("result %+v", res)
	}
	if got := read(t, wa.w.Path, "one.txt"); got != "one\nwip\n" {
		t.Errorf("one.txt = %q", got)
	}
	if got := git(t, wa.w.Path, "log", "--format=%s", wa.w.BaseHead+"..HEAD"); got != "two\none" {
		t.Errorf("commits:\n%s", got)
	}
	wa.logged("/etc/changes.patch", "printed it twice")
}

// hostilePatch is a format-patch mail that git am would take.
func hostilePatch(subject, diff string) string {
	return "From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001\n" +
		"From: Agent <agent@example.com>\nDate: Thu, 1 Jan 2026 00:00:00 +0000\n" +
		"Subject: [PATCH] " + subject + "\n\n---\n" + diff + "-- \n2.39.5\n\n"
}

func newFileDiff(name, mode, content string) string {
	lines := strings.Split(strings.TrimSuffix(content, "\n"), "\n")
	d := "diff --git a/" + name + " b/" + name + "\nnew file mode " + mode + "\n--- /dev/null\n+++ b/" + name + "\n" +
		fmt.Sprintf("@@ -0,0 +1,%d @@\n", len(lines))
	for _, l := range lines {
		d += "+" + l + "\n"
	}
	if !strings.HasSuffix(content, "\n") {
		d += "\\ No newline at end of file\n"
	}
	return d
}

// TestHostilePatches: patches and the uncommitted diff that create a link
// pointing outside and then write through it, write into .git, or climb
// out with "..". Host git must refuse each; the sync reports the failure
// with the work kept, and nothing is written outside.
func TestHostilePatches(t *testing.T) {
	wa, h := newWatch(t)
	sx(t, h, `echo one > one.txt && git add one.txt && git commit -qm one && echo two > two.txt && git add two.txt && git commit -qm two && echo three > three.txt && git add three.txt && git commit -qm three`)
	names := strings.Fields(sx(t, h, "git format-patch -o /tmp/ignored "+wa.w.BaseHead+"..HEAD | xargs -n1 basename"))
	link := newFileDiff("evil", "120000", wa.outside)
	cases := []struct {
		name    string
		patches []string // forged second and third patches ("" keeps the real one)
		changes string   // forged uncommitted diff
		step    string
		landed  string // the last commit that lands (its subject)
	}{
		{"link then write through it", []string{hostilePatch("link", link), hostilePatch("through", newFileDiff("evil/pwned", "100644", "PWNED\n"))}, "", StepCommits, "[PATCH] link"},
		{"link and write through it in one patch", []string{hostilePatch("both", link+newFileDiff("evil/pwned", "100644", "PWNED\n")), ""}, "", StepCommits, "one"},
		{"a hook in .git", []string{hostilePatch("hook", newFileDiff(".git/hooks/post-commit", "100755", "#!/bin/sh\ntouch "+wa.outside+"/pwned\n")), ""}, "", StepCommits, "one"},
		{".git config", []string{hostilePatch("cfg", newFileDiff(".GIT/config", "100644", "[core]\n\thooksPath = "+wa.outside+"\n")), ""}, "", StepCommits, "one"},
		{"climbing out", []string{hostilePatch("up", newFileDiff("../../../escape.txt", "100644", "PWNED\n")), ""}, "", StepCommits, "one"},
		{"uncommitted link and write through it", nil, link + newFileDiff("evil/pwned", "100644", "PWNED\n"), StepUncommitted, "three"},
		{"uncommitted hook in .git", nil, newFileDiff(".git/hooks/pre-commit", "100755", "#!/bin/sh\n"), StepUncommitted, "three"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newForger(t, h)
			for i, p := range c.patches {
				if p != "" {
					f.files["/"+names[i+1]] = []byte(p)
				}
			}
			if c.changes != "" {
				sx(t, h, "echo wip >> one.txt") // so there is a diff to forge
				f.files["/changes.patch"] = []byte(c.changes)
			}
			res, err := SyncOut(t.Context(), wa.w.Path, f, wa.opts())
			t.Logf("result %+v, err %v", res, err)
			wa.checkT(t)
			if err != nil {
				t.Fatal(err)
			}
			if res.Failed != c.step || res.PatchDir == "" || res.Recovery == "" {
				t.Errorf("result %+v, want step %s failed with the work kept", res, c.step)
			}
			if _, err := os.Stat(filepath.Join(wa.outside, "pwned")); err == nil {
				t.Error("outside/pwned written")
			}
			// The work before the hostile patch landed; all of it is kept
			// in the patch dir.
			if got := git(t, wa.w.Path, "log", "-1", "--format=%s", "HEAD"); got != c.landed {
				t.Errorf("HEAD is %q, want %q", got, c.landed)
			}
			if ps, _ := filepath.Glob(filepath.Join(res.PatchDir, "[0-9]*.patch")); c.step == StepCommits && len(ps) != 3 {
				t.Errorf("%d patches kept, want 3", len(ps))
			}
			wa.resetWorktree(t, h, res)
			if c.changes != "" {
				sx(t, h, "git checkout -q -- one.txt")
			}
		})
	}
}

// TestAgentMadeLinks: no forging; an agent in a real sandbox commits and
// leaves links pointing outside (absolute, climbing, to .git) and files
// next to them. They come back as links, the merge brings them into the
// user's branch, and nothing is ever written through them.
func TestAgentMadeLinks(t *testing.T) {
	wa, h := newWatch(t)
	sx(t, h, fmt.Sprintf(`ln -s %s out-abs && ln -s ../../../.. out-rel && ln -s .git dotgit && git add -A && git commit -qm links
ln -s %s u-abs && ln -s .git u-dotgit && echo note > note.txt && echo more >> a.txt`, wa.outside, wa.outside))
	res, err := SyncOut(t.Context(), wa.w.Path, h, wa.opts())
	t.Logf("result %+v, err %v", res, err)
	if err != nil || res.Failed != "" || res.Commits != 1 {
		t.Fatalf("result %+v, err %v", res, err)
	}
	for name, target := range map[string]string{"out-abs": wa.outside, "out-rel": "../../../..", "dotgit": ".git", "u-abs": wa.outside, "u-dotgit": ".git"} {
		if l, err := os.Readlink(filepath.Join(wa.w.Path, name)); err != nil || l != target {
			t.Errorf("%s -> %q (%v), want %q", name, l, err, target)
		}
	}
	wa.check()
	// The commit is merged into the user's branch: the links land there as
	// links (the only change outside the worktree).
	git(t, wa.w.Path, "stash", "-u", "-q")
	mr, err := wa.w.Merge(context.Background())
	if err != nil || len(mr.Commits) != 1 {
		t.Fatalf("merge %+v: %v", mr, err)
	}
	base := filepath.Base(wa.repo)
	wa.check(base+"/out-abs", base+"/out-rel", base+"/dotgit", base+"/.git/HEAD", base+"/.git/COMMIT_EDITMSG")
	if _, err := os.Stat(filepath.Join(wa.outside, "hook-ran")); err == nil {
		t.Error("the repository's post-checkout hook ran")
	}
}

// TestUntrackedThroughCommittedLink: the sandbox commits a link pointing
// outside and lists an untracked file below it. The link lands (it is
// content); the file is not written through it, the step reports what was
// refused, and the printed recovery commands, run as a user would, do not
// write through the link either. A second round has git am unable to
// start (another am is in progress) while the sandbox also left an
// uncommitted change: the recovery commands apply the commits, the
// change and the files by hand.
func TestUntrackedThroughCommittedLink(t *testing.T) {
	wa, h := newWatch(t)
	sx(t, h, "ln -s "+wa.outside+" evil && git add evil && git commit -qm link && echo legit > legit.txt && echo x > evil-list-me")
	f := newForger(t, h)
	f.missing = true
	f.files["/untracked"] = []byte(nulList("evil/pwned", "legit.txt"))
	f.files["/kinds"] = []byte("F\nF\n")
	res, err := SyncOut(t.Context(), wa.w.Path, f, wa.opts())
	t.Logf("result %+v, err %v", res, err)
	wa.check()
	if err != nil || res.Commits != 1 || res.Failed != StepUntracked || res.PatchDir == "" || !slices.Equal(res.Refused, []string{"evil/pwned"}) {
		t.Fatalf("result %+v, err %v", res, err)
	}
	if read(t, wa.w.Path, "legit.txt") != "legit\n" {
		t.Error("legit.txt did not land")
	}
	if !strings.Contains(res.Recovery, "evil/pwned: evil is a symbolic link in the worktree") {
		t.Errorf("the recovery does not say what was refused:\n%s", res.Recovery)
	}
	wa.logged("evil/pwned")
	runRecovery(t, res.Recovery)
	wa.check()
	if fi, err := os.Lstat(filepath.Join(wa.w.Path, "evil")); err != nil || !fi.IsDir() || read(t, wa.w.Path, "evil/pwned") != "FORGED "+h.WorkDir()+"/evil/pwned" {
		t.Errorf("the recovery did not put the file in place of the link: %v", err)
	}

	// Round 2: the same, with git am unable to start and an uncommitted
	// change besides.
	wa.resetWorktree(t, h, OutResult{})
	sx(t, h, "echo wip >> a.txt")
	gitDir := git(t, wa.w.Path, "rev-parse", "--absolute-git-dir")
	if err := os.MkdirAll(filepath.Join(gitDir, "rebase-apply"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err = SyncOut(t.Context(), wa.w.Path, f, wa.opts())
	t.Logf("result %+v, err %v", res, err)
	if err != nil || res.Failed != StepCommits || !res.Uncommitted {
		t.Fatalf("result %+v, err %v", res, err)
	}
	os.RemoveAll(filepath.Join(gitDir, "rebase-apply"))
	runRecovery(t, res.Recovery)
	wa.check()
	if got := git(t, wa.w.Path, "log", "-1", "--format=%s"); got != "link" || read(t, wa.w.Path, "a.txt") != "one\ntwo\nthree\nwip\n" || read(t, wa.w.Path, "legit.txt") != "legit\n" {
		t.Errorf("after the recovery: HEAD %q, a.txt %q", got, read(t, wa.w.Path, "a.txt"))
	}
}

func runRecovery(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("sh", "-e", "-c", script)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("recovery commands failed: %v\n%s\n%s", err, script, out)
	}
}

// TestSyncInSendsNoHostFileTheRepositoryNames: the exclude patterns SyncIn
// copies into the sandbox come from files; a repository's own config (a
// core.excludesFile) or an info/exclude that is a link must not make it
// read and send a host file outside the repository (a private key).
func TestSyncInSendsNoHostFileTheRepositoryNames(t *testing.T) {
	repo, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	outside := scratch(t)
	write(t, outside, "id_rsa", "PRIVATE KEY\n")
	write(t, outside, "token", "TOKEN\n")
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "config", "user.name", "U")
	git(t, repo, "config", "user.email", "u@example.com")
	write(t, repo, "a.txt", "a\n")
	commitAll(t, repo, "initial")
	git(t, repo, "config", "core.excludesFile", filepath.Join(outside, "id_rsa"))
	ex := filepath.Join(repo, ".git", "info", "exclude")
	os.Remove(ex)
	if err := os.Symlink(filepath.Join(outside, "token"), ex); err != nil {
		t.Fatal(err)
	}
	h := newSandbox(t)
	var logs strings.Builder
	o := Options{Timeout: time.Minute, Logf: func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) }}
	if err := SyncIn(t.Context(), repo, h, o); err != nil {
		t.Fatal(err)
	}
	got := sx(t, h, "cat .git/info/exclude")
	if strings.Contains(got, "PRIVATE KEY") || strings.Contains(got, "TOKEN") {
		t.Errorf("a host file outside the repository reached the sandbox:\n%s", got)
	}
	if !strings.Contains(logs.String(), "id_rsa") || !strings.Contains(logs.String(), "info/exclude") {
		t.Errorf("the log does not say what was not read:\n%s", logs.String())
	}
	// One inside the repository is read.
	write(t, repo, ".git/my-excludes", "*.mine\n")
	git(t, repo, "config", "core.excludesFile", ".git/my-excludes")
	h2 := newSandbox(t)
	if err := SyncIn(t.Context(), repo, h2, o); err != nil {
		t.Fatal(err)
	}
	if got := sx(t, h2, "cat .git/info/exclude"); !strings.Contains(got, "*.mine") {
		t.Errorf("the repository's own excludes file was not sent:\n%s", got)
	}
}
