package gitsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

// Out says what SyncOut brings home and where it puts it.
type Out struct {
	// Repo is a directory of the host repository.
	Repo string
	// GitDir is Repo's common git directory when the caller has located
	// the repository (hostgit.Locate); "" locates it again.
	GitDir string
	// RefPrefix is where the work lands in the host repository, e.g.
	// refs/moat/runs/<run-id>: the agent's HEAD at RefPrefix/head.
	RefPrefix string
	// Known is the sandbox commit the host already has: the run's base,
	// or the Head of the previous SyncOut from the same sandbox. Only the
	// commits beyond it travel.
	Known string
	// Label is the subject of the commit moat makes of work the agent
	// left uncommitted; "" means DefaultLabel.
	Label string
	// Limits bound the bundle.
	Limits Limits
	// TempDir holds the bundle while it is checked, in a directory of
	// its own removed before SyncOut returns; "" is os.TempDir().
	TempDir string
}

// DefaultLabel is Out.Label's default.
const DefaultLabel = "moat: work the agent left uncommitted"

// OutResult says what SyncOut brought home.
type OutResult struct {
	// Head is the agent's HEAD, now at RefPrefix/head in the host
	// repository; it is Out.Known when no commit came.
	Head string
	// Committed is the commit moat made in the sandbox, on top of the
	// agent's, of the changes and untracked files it left (Head when set).
	Committed string
	// Uncommitted is a commit of the work the agent left uncommitted that
	// could not go on HEAD, because an operation was unfinished in the
	// sandbox (Unfinished names it: a merge, rebase, cherry-pick ...); it
	// is at RefPrefix/uncommitted, its parent Head.
	Uncommitted, Unfinished string
	// Replaced is set when the agent rewrote history below Out.Known
	// (reset, amend, rebase): Head no longer contains it. It names the
	// ref, RefPrefix/replaced-<n>, that keeps the old history reachable.
	Replaced string
	// New counts the commits in Head beyond Out.Known.
	New int
	// Bytes and Objects measure the bundle that came home.
	Bytes, Objects int64
}

// SyncOut brings the agent's work home from the sandbox repository made
// by SyncIn, in one Exec:
//
//  1. in the sandbox, refs/moat/sync-base moves to Known (what the host
//     has); changes and untracked files git does not ignore become one
//     commit labelled Label on HEAD, made with hooks off and no signing
//     (or, during an unfinished merge or rebase, a commit beside HEAD at
//     refs/moat/uncommitted, so HEAD and the index stay as they are);
//  2. a bundle of HEAD (and that commit) beyond Known is written to the
//     command's standard output and saved on the host, cut off at
//     Limits.BundleBytes;
//  3. on the host the bundle is checked (its refs, its prerequisites, its
//     object count) and its objects enter the repository through git
//     index-pack --strict; then, in one transaction, RefPrefix/head points
//     at the agent's HEAD (RefPrefix/uncommitted at the side commit, and
//     RefPrefix/replaced-<n> at the previous head when the agent rewrote
//     it).
//
// Nothing else in the host repository changes, and on an error no ref
// does: SyncOut may be run again. A bundle over a limit is a *LimitError;
// one that is malformed, carries other refs or objects failing fsck wraps
// ErrHostileBundle.
func SyncOut(ctx context.Context, h sandbox.Handle, out Out, o Options) (OutResult, error) {
	s := newSyncer(h, o)
	res, err := s.syncOut(ctx, out)
	if err != nil {
		return res, fmt.Errorf("sync-out: %w", err)
	}
	return res, nil
}

// outScript is the sandbox side of SyncOut. Its findings go to stderr as
// "moat-out: " lines; the bundle, when there is one, to stdout.
func outScript(known, label string, lim Limits) string {
	q := shell.Quote
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	return gitFunc + `
say() { printf 'moat-out: %s\n' "$*" >&2; }
known=` + q(known) + `
label=` + q(label) + `
body='moat made this commit of the changes and untracked files the agent left when it stopped.'
# update-ref fails when known is not here (the agent pruned it): then the
# bundle cannot build on it.
ex=
if [ -n "$known" ] && g update-ref ` + SyncBaseRef + ` "$known" 2>/dev/null; then ex="^$known"; fi
if [ -d .git ]; then gd=.git; else gd=$(g rev-parse --git-dir) || exit 1; fi
head=$(g rev-parse -q --verify 'HEAD^{commit}') || { echo "the sandbox repository has no commit checked out" >&2; exit 3; }
busy=
for f in MERGE_HEAD CHERRY_PICK_HEAD REVERT_HEAD rebase-merge rebase-apply sequencer BISECT_LOG; do
	if [ -e "$gd/$f" ]; then busy="$busy $f"; fi
done
# One status says both whether anything is left and whether paths are
# unmerged ("u" lines).
st=$(g status --porcelain=v2 --untracked-files=normal --ignore-submodules=all | awk 'NR == 1 { d = 1 } /^u / { u = 1; exit } END { if (u) print "unmerged"; else if (d) print "dirty" }') || exit 1
if [ "$st" = unmerged ]; then busy="$busy unmerged-paths"; fi
wip=
if [ -n "$st" ]; then
	if [ -z "$busy" ] && g add -A && g commit -q --no-verify -m "$label" -m "$body"; then
		head=$(g rev-parse HEAD) || exit 1
		say "committed $head"
	else
		GIT_INDEX_FILE="$gd/moat-uncommitted-index"; export GIT_INDEX_FILE
		rm -f "$GIT_INDEX_FILE"
		ok=
		if g read-tree HEAD && g add -A && tree=$(g write-tree) && wip=$(g commit-tree "$tree" -p HEAD -m "$label" -m "$body (It was not put on the branch: the agent left$busy unfinished.)") && g update-ref refs/moat/uncommitted "$wip"; then ok=1; fi
		rm -f "$GIT_INDEX_FILE"; unset GIT_INDEX_FILE
		[ -n "$ok" ] || { echo "moat could not record the work the agent left uncommitted" >&2; exit 1; }
		say "uncommitted $wip$busy"
	fi
fi
say "head $head"
if [ "$head" = "$known" ] && [ -z "$wip" ]; then say nothing; exit 0; fi
# The limits, checked before anything is sent: each new file's size (the
# first path that has it names it), their sum, their count.
over=$(g rev-list --objects HEAD ${wip:+refs/moat/uncommitted} $ex | g cat-file --batch-check='%(objecttype) %(objectsize) %(rest)' |
	awk -v fmax=` + n(lim.fileBytes()) + ` -v tmax=` + n(lim.bundleBytes()) + ` -v nmax=` + n(lim.files()) + ` '
$1 != "blob" { next }
{ n++; t += $2 }
$2 > fmax + 0 && !big { big = 1; bsz = $2; p = $0; sub(/^[^ ]* [^ ]* /, "", p) }
END {
	if (big) printf "file-size %.0f %s\n", bsz, p
	else if (t > tmax + 0) printf "total-size %.0f\n", t
	else if (n > nmax + 0) printf "file-count %.0f\n", n
}') || exit 1
if [ -n "$over" ]; then say "over $over"; exit 0; fi
exec git bundle create -q - HEAD ${wip:+refs/moat/uncommitted} $ex
`
}

func (s *syncer) syncOut(ctx context.Context, o Out) (OutResult, error) {
	res := OutResult{Head: o.Known}
	repo := hostgit.Repo{TopLevel: o.Repo, CommonDir: o.GitDir}
	if repo.CommonDir == "" {
		var err error
		if repo, err = hostgit.Locate(ctx, s.timeout, o.Repo); err != nil {
			return res, err
		}
	}
	label := o.Label
	if label == "" {
		label = DefaultLabel
	}
	tmp, err := os.MkdirTemp(o.TempDir, "moat-out-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(tmp)
	path := tmp + "/out.bundle"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return res, err
	}
	ectx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	bundle := &cappedFile{f: f, limit: o.Limits.bundleBytes(), over: cancel}
	var (
		mu       sync.Mutex
		said     []string
		stderr   []string
		nothing  bool
		sbxLines int
	)
	er, err := s.h.Exec(ectx, outScript(o.Known, label, o.Limits), sandbox.ExecOptions{Env: sandboxEnv, Stdout: bundle,
		OnStderrLine: func(l string) {
			mu.Lock()
			defer mu.Unlock()
			if v, ok := strings.CutPrefix(l, "moat-out: "); ok && sbxLines < 100 {
				sbxLines++
				said = append(said, v)
				nothing = nothing || v == "nothing"
				return
			}
			if len(stderr) < 50 {
				stderr = append(stderr, hostgit.Tail(l, 500))
			}
		}})
	cerr := f.Close()
	if bundle.exceeded {
		return res, &LimitError{What: OverBundleSize, Got: bundle.n, Limit: bundle.limit}
	}
	if err != nil {
		return res, fmt.Errorf("sandbox command (commit what is left, bundle the new commits): %w", err)
	}
	if cerr != nil {
		return res, cerr
	}
	if er.ExitCode != 0 {
		return res, fmt.Errorf("the sandbox could not bundle the agent's work (exit status %d): %s", er.ExitCode, strings.Join(stderr, "\n"))
	}
	if le := overLimit(said, o.Limits); le != nil {
		return res, le
	}
	for _, v := range said {
		switch f := strings.Fields(v); {
		case len(f) == 2 && f[0] == "committed":
			res.Committed = f[1]
		case len(f) >= 2 && f[0] == "uncommitted":
			res.Uncommitted, res.Unfinished = f[1], strings.Join(f[2:], " ")
		}
	}
	if nothing {
		s.log("sync-out: no new commits")
		res.Committed, res.Uncommitted = "", ""
		return res, nil
	}
	allowed := []string{"HEAD"}
	if res.Uncommitted != "" {
		allowed = append(allowed, "refs/moat/uncommitted")
	}
	bh, err := s.importBundle(ctx, repo, path, allowed, o.Limits)
	defer s.releaseKeeps()
	if err != nil {
		return OutResult{Head: o.Known}, err
	}
	if err := s.checkFileSizes(ctx, repo.TopLevel, bh, o); err != nil {
		s.dropQuarantine()
		return OutResult{Head: o.Known}, err
	}
	refs := bh.refs
	head, ok := refs["HEAD"]
	if !ok {
		s.dropQuarantine()
		return OutResult{Head: o.Known}, fmt.Errorf("%w: it carries no HEAD", ErrHostileBundle)
	}
	if err := s.admit(); err != nil {
		return OutResult{Head: o.Known}, err
	}
	res.Head, res.Bytes = head, bundle.n
	if res.Uncommitted != "" {
		res.Uncommitted = refs["refs/moat/uncommitted"]
	}
	if res.Committed != "" && res.Committed != head {
		res.Committed = "" // the sandbox's word disagrees with its bundle
	}
	res.Objects = bh.objects

	// One transaction: all refs or none.
	var tx strings.Builder
	fmt.Fprintf(&tx, "update %s/head %s\n", o.RefPrefix, head)
	if res.Uncommitted != "" {
		fmt.Fprintf(&tx, "update %s/uncommitted %s\n", o.RefPrefix, res.Uncommitted)
	}
	if o.Known != "" && o.Known != head {
		// One rev-list counts both sides: the commits of Known that Head
		// lacks (any: the agent rewrote history) and the new ones.
		lr, err := hostgit.Line(ctx, s.timeout, repo.TopLevel, "rev-list", "--count", "--left-right", o.Known+"..."+head)
		old, nw, ok := strings.Cut(lr, "\t")
		if err == nil && !ok {
			err = fmt.Errorf("git rev-list --left-right --count printed %q", lr)
		}
		if err != nil {
			return OutResult{Head: o.Known}, err
		}
		if res.New, err = strconv.Atoi(nw); err != nil {
			return OutResult{Head: o.Known}, fmt.Errorf("git rev-list --left-right --count printed %q", lr)
		}
		if old != "0" {
			res.Replaced = s.replacedRef(ctx, repo.TopLevel, o.RefPrefix)
			fmt.Fprintf(&tx, "update %s %s\n", res.Replaced, o.Known)
		}
	} else if o.Known == "" {
		n, err := hostgit.Line(ctx, s.timeout, repo.TopLevel, "rev-list", "--count", head)
		if err != nil {
			return OutResult{Head: o.Known}, err
		}
		res.New, _ = strconv.Atoi(n)
	}
	if _, err := (hostgit.Cmd{Dir: repo.TopLevel, Args: []string{"update-ref", "--stdin"}, Stdin: strings.NewReader(tx.String()), Timeout: s.timeout}).Run(ctx); err != nil {
		return OutResult{Head: o.Known}, err
	}
	s.log("sync-out: %s (%s, %d objects) at %s/head", head[:12], bytesText(res.Bytes), res.Objects, o.RefPrefix)
	return res, nil
}

// replacedRef is the first free RefPrefix/replaced-<n>.
func (s *syncer) replacedRef(ctx context.Context, repo, prefix string) string {
	for n := 1; ; n++ {
		ref := prefix + "/replaced-" + strconv.Itoa(n)
		if v, _ := hostgit.Line(ctx, s.timeout, repo, "rev-parse", "-q", "--verify", ref); v == "" {
			return ref
		}
	}
}

// cappedFile writes to f until limit bytes, then refuses and calls over
// (which cancels the command sending them).
type cappedFile struct {
	f        *os.File
	n, limit int64
	over     func()
	exceeded bool
}

func (c *cappedFile) Write(p []byte) (int, error) {
	if c.exceeded {
		return 0, errTooLarge
	}
	if c.n+int64(len(p)) > c.limit {
		c.exceeded = true
		c.n += int64(len(p))
		c.over()
		return 0, errTooLarge
	}
	n, err := c.f.Write(p)
	c.n += int64(n)
	return n, err
}

var errTooLarge = errors.New("over the size limit")

// overLimit reads the sandbox's "over <what> <n> [path]" finding.
func overLimit(said []string, lim Limits) *LimitError {
	for _, v := range said {
		rest, ok := strings.CutPrefix(v, "over ")
		if !ok {
			continue
		}
		what, rest, _ := strings.Cut(rest, " ")
		num, path, _ := strings.Cut(rest, " ")
		got, _ := strconv.ParseInt(num, 10, 64)
		switch what {
		case "file-size":
			return &LimitError{What: OverFileSize, Path: path, Got: got, Limit: lim.fileBytes()}
		case "total-size":
			return &LimitError{What: OverTotalSize, Got: got, Limit: lim.bundleBytes()}
		default:
			return &LimitError{What: OverFileCount, Got: got, Limit: lim.files()}
		}
	}
	return nil
}

// checkFileSizes makes sure no new file in the imported bundle is over
// the per-file limit, whatever the sandbox said: one git rev-list on the
// host, which leaves out (and prints with "~") every blob that big.
func (s *syncer) checkFileSizes(ctx context.Context, repo string, bh bundleHeader, o Out) error {
	args := []string{"rev-list", "--objects", "--no-object-names", fmt.Sprintf("--filter=blob:limit=%d", o.Limits.fileBytes()+1), "--filter-print-omitted"}
	for _, id := range bh.refs {
		args = append(args, id)
	}
	if o.Known != "" {
		args = append(args, "^"+o.Known)
	}
	out, err := hostgit.Cmd{Dir: repo, Args: args, Timeout: s.timeout, Env: s.quarantineEnv()}.Run(ctx)
	if err != nil {
		return err
	}
	for _, l := range strings.Split(out, "\n") {
		if id, ok := strings.CutPrefix(l, "~"); ok {
			size, _ := hostgit.Cmd{Dir: repo, Args: []string{"cat-file", "-s", id}, Timeout: s.timeout, Env: s.quarantineEnv()}.Run(ctx)
			got, _ := strconv.ParseInt(strings.TrimSpace(size), 10, 64)
			return &LimitError{What: OverFileSize, Got: got, Limit: o.Limits.fileBytes()}
		}
	}
	return nil
}
