package gitsync

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
)

// ChangesResult says what SyncChanges carried.
type ChangesResult struct {
	Tracked   bool // uncommitted changes to tracked files were applied
	Untracked int  // untracked files (not ignored) copied
}

// SyncChanges copies the host worktree's uncommitted state into a sandbox
// repository made by SyncIn: the changes to tracked files (staged or not,
// deletions and binary files included, applied to the sandbox's working
// tree, not its index) and the untracked files git does not ignore.
// Ignored files stay on the host. It is for running commands on what the
// user has in their editor (moat exec); runs use committed state only.
func SyncChanges(ctx context.Context, hostWorktree string, h sandbox.Handle, o Options) (ChangesResult, error) {
	s := newSyncer(h, o)
	res, err := s.syncChanges(ctx, hostWorktree)
	if err != nil {
		return res, fmt.Errorf("sync-in of uncommitted changes: %w", err)
	}
	return res, nil
}

func (s *syncer) syncChanges(ctx context.Context, hostWorktree string) (ChangesResult, error) {
	var res ChangesResult
	repo, err := hostgit.Locate(ctx, s.timeout, hostWorktree)
	if err != nil {
		return res, err
	}
	wt := repo.TopLevel
	// No external diff drivers or textconv: the repository's config must
	// not choose programs moat runs.
	diff, err := s.git(ctx, wt, "-c", "core.quotePath=false", "diff", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/", "HEAD")
	if err != nil {
		return res, err
	}
	list, err := s.git(ctx, wt, "ls-files", "-z", "--others", "--exclude-standard")
	if err != nil {
		return res, err
	}
	var untracked []string
	for _, p := range hostgit.SplitZ(list) {
		// Nested repositories show as "dir/"; their content is theirs.
		if strings.HasSuffix(p, "/") || !validRel(p) {
			continue
		}
		if first, _, _ := strings.Cut(p, "/"); first == hostgit.MoatDir {
			continue
		}
		untracked = append(untracked, p)
	}
	if diff == "" && len(untracked) == 0 {
		return res, nil
	}

	tmp, err := os.MkdirTemp("", "moat-changes-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(tmp)
	stmp, err := s.mktemp(ctx)
	if err != nil {
		return res, err
	}
	defer s.rmTemp(ctx, stmp)

	if diff != "" {
		patch := filepath.Join(tmp, "changes.patch")
		if err := os.WriteFile(patch, []byte(diff), 0o600); err != nil {
			return res, err
		}
		if err := s.copyIn(ctx, patch, stmp+"/changes.patch"); err != nil {
			return res, err
		}
		if _, err := s.run(ctx, sgit+" apply --binary --whitespace=nowarn "+shell.Quote(stmp+"/changes.patch"), nil); err != nil {
			return res, err
		}
		res.Tracked = true
	}
	if len(untracked) > 0 {
		archive := filepath.Join(tmp, "untracked.tar")
		n, err := writeTar(archive, wt, untracked)
		if err != nil {
			return res, err
		}
		if n > 0 {
			if err := s.copyIn(ctx, archive, stmp+"/untracked.tar"); err != nil {
				return res, err
			}
			if _, err := s.run(ctx, "tar -xf "+shell.Quote(stmp+"/untracked.tar"), nil); err != nil {
				return res, err
			}
		}
		res.Untracked = n
	}
	s.log("sync-in: %d untracked file(s), tracked changes: %v", res.Untracked, res.Tracked)
	return res, nil
}

// writeTar archives the regular files and symbolic links at rels (relative
// to dir, read through os.Root so no link leads outside it) into file.
// Files that vanished meanwhile are skipped. It returns how many it wrote.
func writeTar(file, dir string, rels []string) (n int, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	f, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	tw := tar.NewWriter(f)
	for _, rel := range rels {
		fi, err := root.Lstat(rel)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return n, err
		}
		hdr := &tar.Header{Name: rel, Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime(), Format: tar.FormatPAX}
		switch {
		case fi.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := root.Readlink(rel)
			if err != nil {
				return n, err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		default:
			continue // sockets, fifos: not content
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return n, err
		}
		if hdr.Typeflag == tar.TypeReg {
			src, err := root.Open(rel)
			if err != nil {
				return n, err
			}
			_, err = io.CopyN(tw, src, hdr.Size)
			src.Close()
			if err != nil {
				return n, fmt.Errorf("archiving %s: %w", rel, err)
			}
		}
		n++
	}
	return n, tw.Close()
}
