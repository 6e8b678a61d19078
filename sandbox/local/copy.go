package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moatdev/moat/sandbox"
)

// Every sandbox-side file operation goes through h.root, an os.Root on the
// sandbox directory: a symlink planted by a sandboxed command can never make a
// copy read or write outside the sandbox (such an access fails instead).

// sandboxRel turns a sandbox path into a path relative to the sandbox
// directory, refusing paths outside it.
func (h *handle) sandboxRel(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty sandbox path")
	}
	abs := filepath.Clean(p)
	if !filepath.IsAbs(p) {
		abs = filepath.Join(h.work, p)
	}
	rel, err := filepath.Rel(h.dir, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("sandbox path %q is outside the sandbox %s: local sandboxes can only copy to and from paths under it", p, h.dir)
	}
	return rel, nil
}

// checkCtx reports ctx's end or the handle's Close.
func (h *handle) checkCtx(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-h.done:
		return sandbox.ErrClosed
	default:
		return nil
	}
}

// CopyIn copies the host file or directory hostPath to sandboxPath.
func (h *handle) CopyIn(ctx context.Context, hostPath, sandboxPath string) error {
	if err := h.begin("copy in"); err != nil {
		return err
	}
	defer h.ops.Done()
	if err := h.copyIn(ctx, hostPath, sandboxPath); err != nil {
		return fmt.Errorf("local: copy in %s to %s: %w", hostPath, sandboxPath, err)
	}
	return nil
}

func (h *handle) copyIn(ctx context.Context, hostPath, sandboxPath string) error {
	if err := h.checkCtx(ctx); err != nil {
		return err
	}
	rel, err := h.sandboxRel(sandboxPath)
	if err != nil {
		return err
	}
	info, err := os.Stat(hostPath) // the top level may be a link to what the caller means
	if err != nil {
		return err
	}
	if parent := filepath.Dir(rel); parent != "." {
		if err := h.root.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("making parent directories: %w", err)
		}
	}
	switch {
	case info.IsDir():
		// A tree that holds the sandbox would copy into itself forever.
		if real, err := filepath.EvalSymlinks(hostPath); err == nil {
			if real, err = filepath.Abs(real); err == nil && (real == h.dir || strings.HasPrefix(h.dir, real+string(filepath.Separator))) {
				return fmt.Errorf("%s contains the sandbox directory %s; cannot copy it into the sandbox", hostPath, h.dir)
			}
		}
		return h.copyDirIn(ctx, hostPath, rel, info.Mode())
	case info.Mode().IsRegular():
		return h.copyFileIn(ctx, hostPath, rel, info.Mode())
	default:
		return fmt.Errorf("%s is neither a regular file nor a directory (%s)", hostPath, info.Mode().Type())
	}
}

// tempName returns a fresh name next to rel for a file to be renamed to rel.
func tempName(rel string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(filepath.Dir(rel), ".moat-tmp-"+hex.EncodeToString(b[:]))
}

// copyFileIn writes the host file src to rel through a temporary file and a
// rename, so an existing file (or link) at rel is replaced, never written
// through.
func (h *handle) copyFileIn(ctx context.Context, src, rel string, mode fs.FileMode) error {
	if err := h.checkCtx(ctx); err != nil {
		return err
	}
	if st, err := h.root.Lstat(rel); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory in the sandbox; cannot replace it with a file", filepath.Join(h.dir, rel))
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := tempName(rel)
	out, err := h.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, ctxReader{ctx, h, in})
	if err == nil {
		err = out.Chmod(mode.Perm()) // fchmod: exact bits, past the umask
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = h.root.Rename(tmp, rel)
	}
	if err != nil {
		_ = h.root.Remove(tmp)
		return err
	}
	return nil
}

// copyDirIn merges the host directory src into rel.
func (h *handle) copyDirIn(ctx context.Context, src, rel string, mode fs.FileMode) error {
	if err := h.checkCtx(ctx); err != nil {
		return err
	}
	// Stat follows a link at rel only while it stays inside the sandbox.
	st, err := h.root.Stat(rel)
	switch {
	case errorsIsNotExist(err):
		if err := h.root.Mkdir(rel, 0o700); err != nil {
			return err
		}
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s exists in the sandbox and is not a directory", filepath.Join(h.dir, rel))
	case st.Mode().Perm()&0o700 != 0o700:
		// Writable for the copy; the final mode is set below.
		if err := h.chmod(rel, st.Mode().Perm()|0o700); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		hsrc, dst := filepath.Join(src, e.Name()), filepath.Join(rel, e.Name())
		info, err := e.Info() // Lstat: links are never followed
		if err != nil {
			return err
		}
		switch t := info.Mode().Type(); {
		case t == 0:
			err = h.copyFileIn(ctx, hsrc, dst, info.Mode())
		case t == fs.ModeDir:
			err = h.copyDirIn(ctx, hsrc, dst, info.Mode())
		case t == fs.ModeSymlink:
			err = h.symlinkIn(hsrc, dst)
		default:
			err = fmt.Errorf("%s is not a regular file, directory or symlink (%s)", hsrc, t)
		}
		if err != nil {
			return err
		}
	}
	return h.chmod(rel, mode.Perm())
}

// symlinkIn copies the host link src as a link at rel, replacing what is
// there unless it is a directory.
func (h *handle) symlinkIn(src, rel string) error {
	target, err := os.Readlink(src)
	if err != nil {
		return err
	}
	tmp := tempName(rel)
	if err := h.root.Symlink(target, tmp); err != nil {
		return err
	}
	if err := h.root.Rename(tmp, rel); err != nil {
		_ = h.root.Remove(tmp)
		return err
	}
	return nil
}

// chmod sets the mode of the directory rel through an open descriptor, so a
// link swapped in meanwhile cannot redirect it outside the sandbox.
func (h *handle) chmod(rel string, mode fs.FileMode) error {
	f, err := h.root.Open(rel)
	if err != nil {
		return err
	}
	err = f.Chmod(mode)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// CopyOut copies the regular sandbox file sandboxPath to hostPath, through a
// temporary file in hostPath's directory and a rename.
func (h *handle) CopyOut(ctx context.Context, sandboxPath, hostPath string) error {
	if err := h.begin("copy out"); err != nil {
		return err
	}
	defer h.ops.Done()
	if err := h.copyOut(ctx, sandboxPath, hostPath); err != nil {
		return fmt.Errorf("local: copy out %s to %s: %w", sandboxPath, hostPath, err)
	}
	return nil
}

func (h *handle) copyOut(ctx context.Context, sandboxPath, hostPath string) error {
	if err := h.checkCtx(ctx); err != nil {
		return err
	}
	rel, err := h.sandboxRel(sandboxPath)
	if err != nil {
		return err
	}
	in, err := h.root.OpenFile(rel, os.O_RDONLY|openNonblock, 0)
	if errorsIsNotExist(err) {
		return fmt.Errorf("no such file in the sandbox: %w", err)
	}
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("is a directory in the sandbox; CopyOut copies one regular file")
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("not a regular file in the sandbox (%s)", st.Mode().Type())
	}
	if hst, err := os.Stat(hostPath); err == nil && hst.IsDir() {
		return errors.New("the host path is a directory; give the file's name")
	}
	dir := filepath.Dir(hostPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out, err := os.CreateTemp(dir, "."+filepath.Base(hostPath)+".moat-tmp-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(out, ctxReader{ctx, h, in})
	if err == nil {
		err = out.Chmod(st.Mode().Perm())
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(out.Name(), hostPath)
	}
	if err != nil {
		os.Remove(out.Name())
		return err
	}
	return nil
}

// errorsIsNotExist is errors.Is(err, fs.ErrNotExist), kept short.
func errorsIsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// ctxReader stops a copy when ctx ends or the handle closes.
type ctxReader struct {
	ctx context.Context
	h   *handle
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.h.checkCtx(c.ctx); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
