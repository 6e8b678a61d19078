package gitsync

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/moatdev/moat/internal/worktree/hostgit"
)

// Limits bound what a sandbox may send home in one sync out. A zero
// field means its default.
//
// The sandbox checks its work against them before it sends anything, so
// an honest sandbox over a limit sends nothing and its error names the
// file; the host checks again what arrives (the bundle's size and object
// count as it comes, every new file's size before any ref points at it),
// so a hostile sandbox gets no further.
type Limits struct {
	// FileBytes caps the size of each new or changed file.
	FileBytes int64
	// BundleBytes caps the run's bundle of new commits, and the sum of
	// the sizes of the new and changed files in it.
	BundleBytes int64
	// Files caps how many new or changed files the work holds.
	Files int64
	// Objects caps the git objects in the bundle (files, directories and
	// commits).
	Objects int64
}

// Defaults of Limits: a real project's work fits in them.
const (
	DefaultFileBytes   = 100 << 20
	DefaultBundleBytes = 1 << 30
	DefaultFiles       = 100_000
	DefaultObjects     = 2_000_000
)

func orDefault(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

func (l Limits) fileBytes() int64   { return orDefault(l.FileBytes, DefaultFileBytes) }
func (l Limits) bundleBytes() int64 { return orDefault(l.BundleBytes, DefaultBundleBytes) }
func (l Limits) files() int64       { return orDefault(l.Files, DefaultFiles) }
func (l Limits) objects() int64     { return orDefault(l.Objects, DefaultObjects) }

// What a LimitError says is over its limit.
const (
	OverFileSize    = "file size"
	OverTotalSize   = "total size"
	OverFileCount   = "file count"
	OverBundleSize  = "bundle size"
	OverObjectCount = "object count"
)

// LimitError is a sync out refused because the sandbox's work is over a
// limit. Nothing changed on the host; the work is still in the sandbox.
type LimitError struct {
	What  string // one of the Over constants
	Path  string // the file, for OverFileSize ("" when the host found it: a hostile sandbox)
	Got   int64  // what the sandbox sent or announced (a lower bound when cut off)
	Limit int64
}

func (e *LimitError) Error() string {
	var over, raise string
	switch e.What {
	case OverFileSize:
		file := "a file of the agent's"
		if e.Path != "" {
			file = fmt.Sprintf("the agent's file %q", e.Path)
		}
		over = fmt.Sprintf("%s is %s, over the limit of %s per file", file, bytesText(e.Got), bytesText(e.Limit))
		raise = "--max-file-size, config max_file_size or RunOptions.MaxFileBytes"
	case OverTotalSize:
		over = fmt.Sprintf("the agent's new and changed files add up to %s, over the limit of %s per run", bytesText(e.Got), bytesText(e.Limit))
		raise = "--max-sync-size, config max_sync_size or RunOptions.MaxSyncBytes"
	case OverBundleSize:
		over = fmt.Sprintf("the agent's work is %s or more as a git bundle, over the limit of %s per run", bytesText(e.Got), bytesText(e.Limit))
		raise = "--max-sync-size, config max_sync_size or RunOptions.MaxSyncBytes"
	case OverFileCount:
		over = fmt.Sprintf("the agent's work has %d new or changed files, over the limit of %d", e.Got, e.Limit)
		raise = "--max-files, config max_files or RunOptions.MaxSyncFiles"
	default:
		over = fmt.Sprintf("the agent's work holds %d git objects, over the limit of %d", e.Got, e.Limit)
		raise = "RunOptions.MaxSyncObjects"
	}
	return over + ", so nothing came home (raise the limit with " + raise + ")"
}

// ErrHostileBundle is wrapped by the error for a bundle moat will not take:
// one that is malformed, names refs it was not asked for, or holds objects
// that fail git's checks.
var ErrHostileBundle = errors.New("the sandbox sent a bundle moat will not take")

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// bundleHeader is what a bundle file says before its pack.
type bundleHeader struct {
	prereqs []string          // commits the receiver must have
	refs    map[string]string // ref name → object
	packAt  int64             // offset of the pack
	objects int64             // objects in the pack
}

var hexID = regexp.MustCompile(`^[0-9a-f]{40}$`)

// readBundleHeader parses a v2 or v3 bundle (SHA-1 only) and its pack
// header, refusing anything else.
func readBundleHeader(f io.ReaderAt) (bundleHeader, error) {
	h := bundleHeader{refs: map[string]string{}}
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, 1<<20), 64<<10)
	var off int64
	line := func() (string, error) {
		l, err := br.ReadString('\n')
		off += int64(len(l))
		if err != nil {
			return "", fmt.Errorf("%w: its header ends early", ErrHostileBundle)
		}
		return strings.TrimSuffix(l, "\n"), nil
	}
	sig, err := line()
	if err != nil {
		return h, err
	}
	if sig != "# v2 git bundle" && sig != "# v3 git bundle" {
		return h, fmt.Errorf("%w: it is not a git bundle (first line %q)", ErrHostileBundle, short(sig))
	}
	for n := 0; ; n++ {
		if n > 1000 {
			return h, fmt.Errorf("%w: its header has over 1000 lines", ErrHostileBundle)
		}
		l, err := line()
		if err != nil {
			return h, err
		}
		switch {
		case l == "":
			h.packAt = off
			var pack [12]byte
			if _, err := f.ReadAt(pack[:], off); err != nil || !bytes.Equal(pack[:4], []byte("PACK")) {
				return h, fmt.Errorf("%w: no pack after its header", ErrHostileBundle)
			}
			if v := binary.BigEndian.Uint32(pack[4:8]); v != 2 && v != 3 {
				return h, fmt.Errorf("%w: pack version %d", ErrHostileBundle, v)
			}
			h.objects = int64(binary.BigEndian.Uint32(pack[8:12]))
			return h, nil
		case strings.HasPrefix(l, "@"):
			if sig != "# v3 git bundle" || l != "@object-format=sha1" {
				return h, fmt.Errorf("%w: capability %q", ErrHostileBundle, short(l))
			}
		case strings.HasPrefix(l, "-"):
			id, _, _ := strings.Cut(l[1:], " ")
			if !hexID.MatchString(id) {
				return h, fmt.Errorf("%w: prerequisite line %q", ErrHostileBundle, short(l))
			}
			h.prereqs = append(h.prereqs, id)
		default:
			id, name, ok := strings.Cut(l, " ")
			if !ok || !hexID.MatchString(id) || name == "" {
				return h, fmt.Errorf("%w: ref line %q", ErrHostileBundle, short(l))
			}
			if _, dup := h.refs[name]; dup {
				return h, fmt.Errorf("%w: ref %q twice", ErrHostileBundle, short(name))
			}
			h.refs[name] = id
		}
	}
}

// importBundle checks the bundle at path and puts its objects into repo's
// object store with git index-pack --strict, which runs git's fsck checks
// on every object (a tree entry named .git or "..", a malformed commit)
// and checks that everything they point at exists. refs says which refs
// the bundle may carry; any other ref is refused. It returns the bundle's
// header. No ref of repo changes; on refusal nothing is added.
//
// (Not git fetch: before git 2.41 it runs no fsck on a bundle's objects,
// whatever fetch.fsckObjects says.)
func (s *syncer) importBundle(ctx context.Context, repo hostgit.Repo, path string, allowed []string, lim Limits) (bundleHeader, error) {
	var none bundleHeader
	f, err := os.Open(path)
	if err != nil {
		return none, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return none, err
	}
	h, err := readBundleHeader(f)
	if err != nil {
		return none, err
	}
	for name := range h.refs {
		if !contains(allowed, name) {
			return none, fmt.Errorf("%w: it carries the ref %q; only %s may come back", ErrHostileBundle, short(name), strings.Join(allowed, " and "))
		}
	}
	if h.objects > lim.objects() {
		return none, &LimitError{What: OverObjectCount, Got: h.objects, Limit: lim.objects()}
	}
	pack := io.NewSectionReader(f, h.packAt, fi.Size()-h.packAt)
	// The objects go into a quarantine object directory first, as git's
	// own receive-pack does, and into the repository only once every check
	// passed (admit): refused work leaves nothing behind.
	objects := filepath.Join(repo.CommonDir, "objects")
	q, err := os.MkdirTemp(objects, "incoming-moat-")
	if err != nil {
		return none, err
	}
	s.quarantine, s.objects = q, objects
	if err := os.Mkdir(filepath.Join(q, "pack"), 0o755); err != nil {
		s.dropQuarantine()
		return none, err
	}
	// --keep: a concurrent git gc must not prune the objects before a ref
	// points at them; the .keep file goes once the caller's refs are set.
	_, err = hostgit.Cmd{Dir: repo.TopLevel, Args: []string{"index-pack", "--stdin", "--fix-thin", "--strict", "--keep=moat sync-out"},
		Timeout: s.timeout, Stdin: pack, Env: s.quarantineEnv()}.Run(ctx)
	if err != nil {
		s.dropQuarantine()
		var ge *hostgit.Error
		if errors.As(err, &ge) && ge.ExitCode > 0 {
			return none, fmt.Errorf("%w: git index-pack --strict refused its objects: %s", ErrHostileBundle, hostgit.Tail(strings.TrimSpace(ge.Stderr), 600))
		}
		return none, err
	}
	if err := s.checkCommits(ctx, repo.TopLevel, h); err != nil {
		s.dropQuarantine()
		return none, err
	}
	return h, nil
}

// quarantineEnv makes a git command see the objects in quarantine too.
func (s *syncer) quarantineEnv() []string {
	if s.quarantine == "" {
		return nil
	}
	return []string{"GIT_OBJECT_DIRECTORY=" + s.quarantine, "GIT_ALTERNATE_OBJECT_DIRECTORIES=" + cQuote(s.objects)}
}

// cQuote quotes path as git reads a C-style quoted entry of a path list
// (GIT_ALTERNATE_OBJECT_DIRECTORIES is split at ':' otherwise).
func cQuote(path string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// dropQuarantine removes the objects of refused work: nothing of it stays
// in the repository.
func (s *syncer) dropQuarantine() {
	if s.quarantine != "" {
		_ = os.RemoveAll(s.quarantine)
	}
	s.quarantine = ""
}

// admit moves the checked packs from quarantine into the repository: each
// pack before its index, so a reader that finds an index finds its pack.
func (s *syncer) admit() error {
	defer s.dropQuarantine()
	qpack := filepath.Join(s.quarantine, "pack")
	dst := filepath.Join(s.objects, "pack")
	// ReadDir, not Glob: the repository's path may hold *, ? or [.
	ents, err := os.ReadDir(qpack)
	if err != nil {
		return err
	}
	for _, e := range ents {
		base, isIdx := strings.CutSuffix(e.Name(), ".idx")
		if !isIdx || !strings.HasPrefix(base, "pack-") {
			continue
		}
		for _, ext := range []string{".keep", ".pack", ".rev", ".idx"} {
			from := filepath.Join(qpack, base+ext)
			if _, err := os.Stat(from); errors.Is(err, fs.ErrNotExist) && ext == ".rev" {
				continue
			}
			if err := os.Rename(from, filepath.Join(dst, base+ext)); err != nil {
				return fmt.Errorf("moving the agent's objects into the repository: %w", err)
			}
			if ext == ".keep" {
				s.keepFiles = append(s.keepFiles, filepath.Join(dst, base+ext))
			}
		}
	}
	return nil
}

// checkCommits makes sure, with one git command, that the bundle's refs
// and its prerequisites are commits the repository has (a prerequisite
// index-pack could not do without, or one it did not need and names
// another kind of object, is refused all the same). The objects index-pack
// took stay unreferenced when this fails, for git gc to prune.
func (s *syncer) checkCommits(ctx context.Context, repo string, h bundleHeader) error {
	type want struct{ id, what string }
	var ws []want
	for _, p := range h.prereqs {
		ws = append(ws, want{p, "prereq"})
	}
	for name, id := range h.refs {
		ws = append(ws, want{id, name})
	}
	if len(ws) == 0 {
		return nil
	}
	var in strings.Builder
	for _, w := range ws {
		in.WriteString(w.id + "\n")
	}
	out, err := hostgit.Cmd{Dir: repo, Args: []string{"cat-file", "--batch-check=%(objecttype)"}, Timeout: s.timeout, Env: s.quarantineEnv(),
		Stdin: strings.NewReader(in.String())}.Run(ctx)
	if err != nil {
		return err
	}
	types := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i, w := range ws {
		if i < len(types) && types[i] == "commit" {
			continue
		}
		if w.what == "prereq" {
			return fmt.Errorf("%w: it builds on %s, which this repository does not have as a commit", ErrHostileBundle, w.id[:12])
		}
		return fmt.Errorf("%w: its ref %s points at %s, which is not a commit", ErrHostileBundle, w.what, w.id[:12])
	}
	return nil
}

// releaseKeeps removes the .keep files importBundle left, once refs point
// at the objects.
func (s *syncer) releaseKeeps() {
	for _, k := range s.keepFiles {
		_ = os.Remove(k)
	}
	s.keepFiles = nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
