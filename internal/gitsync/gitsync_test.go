package gitsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/internal/worktree/hostgit/hostgittest"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/local"
)

func TestMain(m *testing.M) { hostgittest.Main(m) }

var provider = local.New(local.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

func opts(t *testing.T) Options {
	return Options{Timeout: time.Minute, Logf: func(f string, a ...any) { t.Logf(f, a...) }}
}

// sx runs cmd in the sandbox and fails the test unless it exits 0.
func sx(t *testing.T, h sandbox.Handle, cmd string) string {
	t.Helper()
	r, err := h.Exec(t.Context(), cmd, sandbox.ExecOptions{})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("sandbox %q: %v exit %d\n%s%s", cmd, err, r.ExitCode, r.Stdout, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return hostgittest.Git(t, dir, args...)
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// binaryContent is content git treats as binary.
var binaryContent = string([]byte{0, 1, 2, 3, 0xff, 0xfe, 0, 'P', 'N', 'G', 0, 10, 13, 0x80})

const prefix = "refs/moat/runs/test"

// synced is a host repository and a sandbox synced in from its main.
type synced struct {
	repo, base string
	h          sandbox.Handle
}

func setup(t *testing.T) synced {
	t.Helper()
	repo := t.TempDir()
	if r, err := filepath.EvalSymlinks(repo); err == nil {
		repo = r
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "config", "user.name", "Host User")
	git(t, repo, "config", "user.email", "host@example.com")
	write(t, repo, "a.txt", "one\ntwo\nthree\n")
	write(t, repo, "img.bin", binaryContent)
	write(t, repo, ".gitignore", "*.log\n")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "initial")
	base := git(t, repo, "rev-parse", "HEAD")
	git(t, repo, "update-ref", prefix+"/base", base)

	h, err := provider.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	b, err := PackBase(t.Context(), time.Minute, repo, t.TempDir(), prefix+"/base")
	if err != nil {
		t.Fatal(err)
	}
	loc, err := hostgit.Locate(t.Context(), time.Minute, repo)
	if err != nil {
		t.Fatal(err)
	}
	in := In{Base: b, Branch: "moat/test", Identity: hostgit.Identity{Name: "Host User", Email: "host@example.com"}, Excludes: HostExcludes(t.Context(), loc, opts(t))}
	if err := SyncIn(t.Context(), h, in, opts(t)); err != nil {
		t.Fatal(err)
	}
	return synced{repo: repo, base: base, h: h}
}

func (s synced) out(t *testing.T, known string, lim Limits) (OutResult, error) {
	return SyncOut(t.Context(), s.h, Out{Repo: s.repo, RefPrefix: prefix, Known: known, Limits: lim}, opts(t))
}

func TestSyncInMakesTheBranchAtTheBase(t *testing.T) {
	s := setup(t)
	if got := sx(t, s.h, "git rev-parse HEAD refs/moat/sync-base && git symbolic-ref --short HEAD"); got != s.base+"\n"+s.base+"\nmoat/test" {
		t.Errorf("sandbox HEAD, sync-base, branch: %q; want %s twice and moat/test", got, s.base)
	}
	if got := sx(t, s.h, "git config user.email && cat img.bin | od -An -tx1 | tr -d ' \\n' && git status --porcelain"); got != "host@example.com\n00010203fffe00504e47000a0d80" {
		t.Errorf("identity, binary file, clean tree: %q", got)
	}
	// A retry after a lost answer finds the repository complete.
	b, _ := PackBase(t.Context(), time.Minute, s.repo, t.TempDir(), prefix+"/base")
	if err := SyncIn(t.Context(), s.h, In{Base: b, Branch: "moat/test"}, opts(t)); err != nil {
		t.Errorf("SyncIn again on a finished sync in: %v", err)
	}
}

// The identity is written into the sandbox's .git/config by the shell, not
// by git config: names with quotes, backslashes and tabs must read back
// exactly, and a sandbox git that defaults to other formats must still get
// the repository the pack was made for.
func TestSyncInIdentityAndFormats(t *testing.T) {
	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	write(t, repo, "a.txt", "a\n")
	git(t, repo, "add", "-A")
	git(t, repo, "-c", "user.name=U", "-c", "user.email=u@example.com", "commit", "-q", "-m", "initial")
	git(t, repo, "update-ref", prefix+"/base", "HEAD")
	h, err := provider.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	// The sandbox's own global config asks for what moat must not get.
	sx(t, h, `git config --global init.defaultRefFormat reftable && git config --global init.defaultObjectFormat sha256 && git config --global init.defaultBranch moat/test`)
	b, err := PackBase(t.Context(), time.Minute, repo, t.TempDir(), prefix+"/base")
	if err != nil {
		t.Fatal(err)
	}
	id := hostgit.Identity{Name: `Ann "the \ hacker"	O'Neil ; $(id)`, Email: `a\b"c@example.com`}
	if err := SyncIn(t.Context(), h, In{Base: b, Branch: "moat/test", Identity: id}, opts(t)); err != nil {
		t.Fatal(err)
	}
	if got := sx(t, h, "git config user.name && git config user.email && git rev-parse --show-object-format 2>/dev/null || echo sha1"); got != id.Name+"\n"+id.Email+"\nsha1" {
		t.Errorf("identity and object format in the sandbox: %q; want %q, %q, sha1", got, id.Name, id.Email)
	}
	if got := sx(t, h, "git commit -q --allow-empty -m x && git log -1 --format='%an <%ae>'"); got != id.Name+" <"+id.Email+">" {
		t.Errorf("a commit in the sandbox is by %q", got)
	}
}

// The agent's commits arrive exactly as made: same SHAs, a merge commit,
// a binary file, several authors, a signature.
func TestCommitsComeHomeAsTheyWere(t *testing.T) {
	s := setup(t)
	sign := ""
	if _, err := exec.LookPath("gpg"); err == nil {
		sign = gpgKey(t, s.h)
	} else {
		t.Log("gpg is not installed: no signed commit in this test")
	}
	sx(t, s.h, `set -e
printf '\000\001binary\377' > blob.bin && git add blob.bin && git commit -qm 'binary file'
git checkout -qb side && echo side > side.txt && git add side.txt && GIT_AUTHOR_NAME='Ada Other' GIT_AUTHOR_EMAIL=ada@example.com git commit -qm 'by another author'
git checkout -q moat/test && echo main >> a.txt && git commit -qam 'on the branch'
git merge -q --no-edit side
`+sign)
	want := sx(t, s.h, "git rev-list --format='%H %an %G?' HEAD ^"+s.base+" | grep -v ^commit")
	res, err := s.out(t, s.base, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := git(t, s.repo, "rev-list", "--format=%H %an %G?", res.Head, "^"+s.base); strings.Join(dropCommitLines(got), "\n") != want {
		t.Errorf("host history\n%s\nwant (sandbox)\n%s", got, want)
	}
	if res.Head != git(t, s.repo, "rev-parse", prefix+"/head") || res.Head != sx(t, s.h, "git rev-parse HEAD") {
		t.Errorf("head %s, ref %s", res.Head, git(t, s.repo, "rev-parse", prefix+"/head"))
	}
	if parents := strings.Fields(git(t, s.repo, "log", "-1", "--format=%P", res.Head)); sign == "" && len(parents) != 2 {
		t.Errorf("the merge commit has parents %v", parents)
	}
	if sign != "" && !strings.Contains(git(t, s.repo, "cat-file", "commit", res.Head), "BEGIN PGP SIGNATURE") {
		t.Error("the signature did not survive")
	}
	if git(t, s.repo, "status", "--porcelain") != "" || git(t, s.repo, "rev-parse", "main") != s.base {
		t.Error("sync out touched the user's branch or tree")
	}
	// Nothing new: nothing travels, and sync-base records what the host has.
	again, err := s.out(t, res.Head, Limits{})
	if err != nil || again.Head != res.Head || again.Bytes != 0 {
		t.Errorf("second sync out: %+v %v", again, err)
	}
	if got := sx(t, s.h, "git rev-parse "+SyncBaseRef); got != res.Head {
		t.Errorf("sync-base %s; want %s", got, res.Head)
	}
}

func dropCommitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "commit ") {
			out = append(out, l)
		}
	}
	return out
}

// gpgKey makes a throwaway signing key in the sandbox and returns the
// command that makes a signed commit with it.
func gpgKey(t *testing.T, h sandbox.Handle) string {
	sx(t, h, `export GNUPGHOME="$PWD/../gnupg" && mkdir -p -m 700 "$GNUPGHOME" &&
gpg --batch --quiet --pinentry-mode loopback --passphrase '' --quick-gen-key 'Signer <signer@example.com>' default default never 2>/dev/null`)
	return `export GNUPGHOME="$PWD/../gnupg"; echo signed > signed.txt; git add signed.txt; git -c user.signingkey=signer@example.com commit -q -S -m signed`
}

func TestUncommittedWorkBecomesALabelledCommit(t *testing.T) {
	s := setup(t)
	sx(t, s.h, "echo changed >> a.txt && echo new > new.txt && mkdir -p d && echo deep > d/f.txt && echo log > x.log")
	res, err := s.out(t, s.base, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Committed == "" || res.Committed != res.Head {
		t.Fatalf("no labelled commit: %+v", res)
	}
	if got := git(t, s.repo, "log", "-1", "--format=%s", res.Head); got != DefaultLabel {
		t.Errorf("subject %q", got)
	}
	if got := git(t, s.repo, "diff", "--name-only", s.base, res.Head); got != "a.txt\nd/f.txt\nnew.txt" {
		t.Errorf("the commit holds %q (ignored x.log must stay out)", got)
	}
}

func TestUnfinishedMergeKeepsWorkBesideHead(t *testing.T) {
	s := setup(t)
	sx(t, s.h, `git checkout -qb other && echo theirs > a.txt && git commit -qam theirs && git checkout -q moat/test &&
echo ours > a.txt && git commit -qam ours && (git merge other >/dev/null 2>&1 || true) && echo extra > extra.txt`)
	res, err := s.out(t, s.base, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Uncommitted == "" || !strings.Contains(res.Unfinished, "MERGE_HEAD") {
		t.Fatalf("want the work beside HEAD during the merge: %+v", res)
	}
	if got := git(t, s.repo, "rev-parse", prefix+"/uncommitted^"); got != res.Head {
		t.Errorf("the side commit's parent %s; want HEAD %s", got, res.Head)
	}
	if !strings.Contains(git(t, s.repo, "show", prefix+"/uncommitted:extra.txt"), "extra") {
		t.Error("extra.txt is not in the side commit")
	}
	if got := sx(t, s.h, "test -e .git/MERGE_HEAD && echo still merging"); got != "still merging" {
		t.Error("sync out disturbed the agent's merge")
	}
}

func TestRewrittenHistoryKeepsBoth(t *testing.T) {
	s := setup(t)
	sx(t, s.h, "echo 1 > one.txt && git add one.txt && git commit -qm one")
	first, err := s.out(t, s.base, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sx(t, s.h, "echo amended > one.txt && git commit -qa --amend -m 'one, amended'")
	second, err := s.out(t, first.Head, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if second.Replaced == "" || git(t, s.repo, "rev-parse", second.Replaced) != first.Head {
		t.Fatalf("the rewrite was not reported with the old head kept: %+v", second)
	}
	if git(t, s.repo, "rev-parse", prefix+"/head") != second.Head {
		t.Error("the run's head did not move to the rewritten history")
	}
}

// A hostile sandbox sends bundles moat must refuse, with no ref changed.
func TestHostileBundlesRefused(t *testing.T) {
	fakeBundle := func(script string) string {
		// Runs in place of the real sync-out script: whatever the sandbox
		// prints on stdout is "the bundle".
		return `cat > ../fake.sh <<'EOF'
` + script + `
EOF
chmod +x ../fake.sh`
	}
	cases := []struct {
		name, prepare string
		lim           Limits
		want          func(error) bool
	}{
		{"objects failing fsck", `blob=$(echo evil | git hash-object -w --stdin) && tree=$(printf "100644 blob $blob\t.git\n" | git mktree) &&
c=$(git commit-tree $tree -p HEAD -m evil) && git update-ref HEAD $c`, Limits{},
			func(err error) bool {
				return errors.Is(err, ErrHostileBundle) && strings.Contains(err.Error(), "hasDotgit")
			}},
		{"a ref outside the expected namespace", `echo x > x && git add x && git commit -qm x && git update-ref refs/heads/main HEAD &&
` + fakeBundle(`git bundle create -q - HEAD refs/heads/main ^refs/moat/sync-base`), Limits{},
			func(err error) bool {
				return errors.Is(err, ErrHostileBundle) && strings.Contains(err.Error(), "refs/heads/main")
			}},
		{"over the size limit, the sandbox's check skipped", `head -c 300000 /dev/urandom > big.bin && git add big.bin && git commit -qm big &&
` + fakeBundle(`git bundle create -q - HEAD ^refs/moat/sync-base`), Limits{BundleBytes: 100 << 10},
			func(err error) bool { var le *LimitError; return errors.As(err, &le) && le.What == OverBundleSize }},
		{"a file over its limit, the sandbox's check skipped", `head -c 300000 /dev/urandom > big.bin && git add big.bin && git commit -qm big &&
` + fakeBundle(`git bundle create -q - HEAD ^refs/moat/sync-base`), Limits{FileBytes: 100 << 10},
			func(err error) bool {
				var le *LimitError
				return errors.As(err, &le) && le.What == OverFileSize && le.Got == 300000 && le.Limit == 100<<10
			}},
		{"over the object limit", `for i in 1 2 3 4 5 6; do echo $i > f$i; done && git add . && git commit -qm many`, Limits{Objects: 3},
			func(err error) bool { var le *LimitError; return errors.As(err, &le) && le.What == "object count" }},
		{"not a bundle at all", fakeBundle(`echo 'moat-out: head 0000000000000000000000000000000000000000' >&2; echo '# v2 git bundle'; echo garbage`), Limits{},
			func(err error) bool { return errors.Is(err, ErrHostileBundle) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := setup(t)
			sx(t, s.h, c.prepare)
			before := git(t, s.repo, "for-each-ref")
			var err error
			if strings.Contains(c.prepare, "fake.sh") {
				err = s.outWith(t, "sh ../fake.sh", c.lim)
			} else {
				_, err = s.out(t, s.base, c.lim)
			}
			if err == nil || !c.want(err) {
				t.Fatalf("SyncOut = %v; want a refusal", err)
			}
			t.Logf("refused: %v", err)
			if after := git(t, s.repo, "for-each-ref"); after != before {
				t.Errorf("refs changed:\n%s\nwas\n%s", after, before)
			}
			if git(t, s.repo, "status", "--porcelain") != "" {
				t.Error("the user's tree changed")
			}
			if k, _ := filepath.Glob(filepath.Join(s.repo, ".git/objects/pack/*.keep")); len(k) > 0 {
				t.Errorf("keep files left: %v", k)
			}
			if p, _ := filepath.Glob(filepath.Join(s.repo, ".git/objects/pack/*")); len(p) > 0 {
				t.Errorf("the refused objects stay in the repository: %v", p)
			}
			if q, _ := filepath.Glob(filepath.Join(s.repo, ".git/objects/incoming-*")); len(q) > 0 {
				t.Errorf("the quarantine stays: %v", q)
			}
		})
	}
}

// An honest sandbox over a limit sends nothing, and the error says which
// file, which limit, and how to raise it.
func TestLimitsCheckedInTheSandbox(t *testing.T) {
	cases := []struct {
		name, prepare string
		lim           Limits
		what          string
		says          []string
	}{
		{"a file too big", `mkdir -p data && head -c 300000 /dev/urandom > 'data/big file.bin' && echo small > s.txt && git add . && git commit -qm big`,
			Limits{FileBytes: 200 << 10}, OverFileSize,
			[]string{`"data/big file.bin"`, "293.0 KiB", "200.0 KiB per file", "--max-file-size", "nothing came home"}},
		{"too much in all", `for i in 1 2 3; do head -c 60000 /dev/urandom > f$i; done && git add . && git commit -qm three && echo uncommitted > u.txt`,
			Limits{BundleBytes: 150 << 10}, OverTotalSize,
			[]string{"add up to", "150.0 KiB per run", "--max-sync-size"}},
		{"a file too big, made to look small by a replace ref", `head -c 300000 /dev/urandom > big.bin && echo small > small.txt && git add . && git commit -qm big &&
git replace -f "$(git rev-parse HEAD:big.bin)" "$(git rev-parse HEAD:small.txt)"`,
			Limits{FileBytes: 200 << 10}, OverFileSize,
			[]string{`"big.bin"`, "293.0 KiB"}},
		{"too many files", `mkdir m && for i in 1 2 3 4 5 6; do echo $i > m/f$i; done && git add . && git commit -qm many`,
			Limits{Files: 5}, OverFileCount,
			[]string{"6 new or changed files", "limit of 5", "--max-files"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := setup(t)
			sx(t, s.h, c.prepare)
			before, objects := git(t, s.repo, "for-each-ref"), git(t, s.repo, "count-objects", "-v")
			_, err := s.out(t, s.base, c.lim)
			var le *LimitError
			if !errors.As(err, &le) || le.What != c.what {
				t.Fatalf("SyncOut = %v; want a %s LimitError", err, c.what)
			}
			for _, w := range c.says {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if after := git(t, s.repo, "for-each-ref"); after != before {
				t.Errorf("refs changed:\n%s\nwas\n%s", after, before)
			}
			if n := git(t, s.repo, "count-objects", "-v"); n != objects {
				t.Errorf("objects arrived all the same:\n%s\nwas\n%s", n, objects)
			}
			// Raised, the same work comes home.
			if _, err := s.out(t, s.base, Limits{}); err != nil {
				t.Errorf("with the default limits: %v", err)
			}
		})
	}
}

// outWith is a sync out whose sandbox side is cmd (a hostile sandbox's
// own answer) rather than moat's script.
func (s synced) outWith(t *testing.T, cmd string, lim Limits) error {
	h := &rewriting{Handle: s.h, cmd: cmd}
	_, err := SyncOut(t.Context(), h, Out{Repo: s.repo, RefPrefix: prefix, Known: s.base, Limits: lim}, opts(t))
	return err
}

// rewriting runs cmd instead of the sync-out script.
type rewriting struct {
	sandbox.Handle
	cmd string
}

func (r *rewriting) Exec(ctx context.Context, cmd string, o sandbox.ExecOptions) (sandbox.ExecResult, error) {
	if strings.Contains(cmd, "bundle create -q -") {
		cmd = r.cmd
	}
	return r.Handle.Exec(ctx, cmd, o)
}

// TestHostExcludesReadNoHostFileTheRepositoryNames: the exclude patterns
// sync in copies into the sandbox come from files; a repository's own
// config (a core.excludesFile) or an info/exclude that is a link must not
// make it read and send a host file outside the repository (a private key).
func TestHostExcludesReadNoHostFileTheRepositoryNames(t *testing.T) {
	repo, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	write(t, outside, "id_rsa", "PRIVATE KEY\n")
	write(t, outside, "token", "TOKEN\n")
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "config", "core.excludesFile", filepath.Join(outside, "id_rsa"))
	ex := filepath.Join(repo, ".git", "info", "exclude")
	os.Remove(ex)
	if err := os.Symlink(filepath.Join(outside, "token"), ex); err != nil {
		t.Fatal(err)
	}
	loc, err := hostgit.Locate(t.Context(), time.Minute, repo)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	o := Options{Timeout: time.Minute, Logf: func(f string, a ...any) { logs.WriteString(fmt.Sprintf(f, a...) + "\n") }}
	got := HostExcludes(t.Context(), loc, o)
	if strings.Contains(got, "PRIVATE KEY") || strings.Contains(got, "TOKEN") {
		t.Errorf("a host file outside the repository would reach the sandbox:\n%s", got)
	}
	if !strings.Contains(logs.String(), "id_rsa") || !strings.Contains(logs.String(), "info/exclude") {
		t.Errorf("the log does not say what was not read:\n%s", logs.String())
	}
	// One inside the repository is read.
	write(t, repo, ".git/my-excludes", "*.mine\n")
	git(t, repo, "config", "core.excludesFile", ".git/my-excludes")
	if got := HostExcludes(t.Context(), loc, o); !strings.Contains(got, "*.mine") {
		t.Errorf("the repository's own excludes file was not sent:\n%s", got)
	}
}

// TestSetupFilesStayHome: what setup copied in or made is not taken home
// as the agent's uncommitted work.
func TestSetupFilesStayHome(t *testing.T) {
	s := setup(t)
	sx(t, s.h, "mkdir -p node_modules/x && echo dep > node_modules/x/i.js && echo SECRET=1 > .env && echo 'odd*[name]' > 'we?ird*'")
	if err := ExcludeSetupFiles(t.Context(), s.h, opts(t)); err != nil {
		t.Fatal(err)
	}
	sx(t, s.h, "echo agent > agent.txt && echo new > weird")
	res, err := s.out(t, s.base, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := git(t, s.repo, "diff", "--name-only", s.base, res.Head); got != "agent.txt\nweird" {
		t.Errorf("the labelled commit holds %q; want only the agent's files", got)
	}
}
