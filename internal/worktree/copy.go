package worktree

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// fileSig identifies what CopyToWorktree wrote at one path, so Close can tell
// an untouched copy from work.
type fileSig struct {
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func sigOf(fi fs.FileInfo) fileSig {
	return fileSig{size: fi.Size(), mode: fi.Mode(), modTime: fi.ModTime()}
}

// unchangedCopy reports whether slashPath is a CopyToWorktree copy nobody
// changed since.
func (w *Worktree) unchangedCopy(slashPath string) bool {
	want, ok := w.copies[slashPath]
	if !ok {
		return false
	}
	fi, err := os.Lstat(filepath.Join(w.Path, filepath.FromSlash(slashPath)))
	return err == nil && sigOf(fi) == want
}

// copyIn copies the CopyToWorktree paths from the repository's top level
// into the worktree. Writes go through an os.Root on the worktree, so a
// symbolic link in the checkout cannot send them elsewhere.
func (w *Worktree) copyIn(ctx context.Context, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	root, err := os.OpenRoot(w.Path)
	if err != nil {
		return err
	}
	defer root.Close()
	w.copies = map[string]fileSig{}
	for _, p := range paths {
		rel := filepath.Clean(filepath.FromSlash(p))
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("CopyToWorktree path %q must be relative to the repository root and stay inside it", p)
		}
		first := strings.Split(filepath.ToSlash(rel), "/")[0]
		if strings.EqualFold(first, ".git") || strings.EqualFold(first, ".moat") {
			return fmt.Errorf("CopyToWorktree path %q is inside %s, which moat does not copy", p, first)
		}
		src := filepath.Join(w.Repo, rel)
		// Git already carries tracked files; a copy of a locally changed one
		// would reach the sandbox as an uncommitted change and clash with
		// itself on the way back.
		if tracked, _ := w.line(ctx, w.Repo, "ls-files", "--", filepath.ToSlash(rel)); tracked != "" {
			return fmt.Errorf("CopyToWorktree path %q is tracked by git, which already brings it to the run: list only what git does not carry, such as .env or node_modules", p)
		}
		if _, err := os.Lstat(src); os.IsNotExist(err) {
			w.CopySkipped = append(w.CopySkipped, p)
			w.log("CopyToWorktree: %s does not exist in %s; skipped", p, w.Repo)
			continue
		}
		err := filepath.WalkDir(src, func(s string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := filepath.Rel(w.Repo, s)
			if err != nil {
				return err
			}
			return w.copyEntry(root, s, r, d)
		})
		if err != nil {
			return err
		}
		w.Copied = append(w.Copied, p)
	}
	return nil
}

// copyEntry copies one file system entry to rel in root.
func (w *Worktree) copyEntry(root *os.Root, src, rel string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	if dir := filepath.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	switch {
	case d.IsDir():
		if err := root.MkdirAll(rel, 0o755); err != nil {
			return err
		}
		return root.Chmod(rel, info.Mode().Perm())
	case d.Type()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := root.RemoveAll(rel); err != nil {
			return err
		}
		if err := root.Symlink(target, rel); err != nil {
			return err
		}
	case d.Type().IsRegular():
		if err := copyFile(root, src, rel, info.Mode().Perm()); err != nil {
			return err
		}
	default:
		w.log("CopyToWorktree: %s is not a file, directory or link; skipped", src)
		return nil
	}
	fi, err := root.Lstat(rel)
	if err != nil {
		return err
	}
	w.copies[path.Clean(filepath.ToSlash(rel))] = sigOf(fi)
	return nil
}

func copyFile(root *os.Root, src, rel string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	// Replace, never write through: the destination may be a link.
	if fi, err := root.Lstat(rel); err == nil && !fi.Mode().IsRegular() {
		if err := root.RemoveAll(rel); err != nil {
			return err
		}
	}
	out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Chmod(rel, perm)
	}
	return err
}
