package gitsync

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/worktree/hostgit"
)

// Base is the run's base as SyncIn sends it: a git pack of Ref's history
// made on the host by PackBase, with its index. The index travels with the
// pack so the sandbox only files the two away: indexing a pack (git
// index-pack, what fetching a bundle does) costs as much as making it, and
// a sandbox need not check what its own host sends it.
type Base struct {
	Pack, Index string // the two files
	Ref         string // the ref packed, a full ref name
	Head        string // the commit Ref points at
	Size        int64  // bytes of both files
}

// PackBase packs ref's history into a new directory in dir, leaving out
// what the commits in have reach (so the sandbox must have them). ref must
// be a full ref name.
func PackBase(ctx context.Context, timeout time.Duration, repo, dir, ref string, have ...string) (Base, error) {
	head, err := hostgit.Line(ctx, timeout, repo, "rev-parse", "--verify", "-q", ref+"^{commit}")
	if err != nil || head == "" {
		return Base{}, fmt.Errorf("pack: %s is not a commit in %s", ref, repo)
	}
	out, err := os.MkdirTemp(dir, "base-")
	if err != nil {
		return Base{}, fmt.Errorf("pack: %w", err)
	}
	revs := head + "\n"
	for _, h := range have {
		if h != "" && h != head {
			revs += "^" + h + "\n"
		}
	}
	name, err := hostgit.Cmd{Dir: repo, Timeout: timeout, Stdin: strings.NewReader(revs),
		Args: []string{"pack-objects", "--revs", "--delta-base-offset", "-q", filepath.Join(out, "pack")}}.Run(ctx)
	if err != nil {
		return Base{}, fmt.Errorf("pack: %w", err)
	}
	name = strings.TrimSpace(name)
	if !hexID.MatchString(name) {
		return Base{}, fmt.Errorf("pack: git pack-objects printed %q, not a pack name", hostgit.Tail(name, 100))
	}
	b := Base{Ref: ref, Head: head,
		Pack:  filepath.Join(out, "pack-"+name+".pack"),
		Index: filepath.Join(out, "pack-"+name+".idx")}
	for _, p := range []string{b.Pack, b.Index} {
		fi, err := os.Stat(p)
		if err != nil {
			return Base{}, fmt.Errorf("pack: %w", err)
		}
		b.Size += fi.Size()
	}
	return b, nil
}

// Remove deletes the base's files.
func (b Base) Remove() error {
	if b.Pack == "" {
		return nil
	}
	return os.RemoveAll(filepath.Dir(b.Pack))
}

// tarStream returns the pack and its index as a tar stream (what the
// sandbox's tar extracts into .git/objects/pack), written as it is read.
func (b Base) tarStream() io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := func() error {
			for _, p := range []string{b.Pack, b.Index} {
				if err := addFile(tw, p); err != nil {
					return err
				}
			}
			return tw.Close()
		}()
		pw.CloseWithError(err)
	}()
	return pr
}

func addFile(tw *tar.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: filepath.Base(p), Size: fi.Size(), Mode: 0o444, ModTime: fi.ModTime(), Format: tar.FormatUSTAR}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
