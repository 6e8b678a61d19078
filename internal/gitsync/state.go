package gitsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moatdev/moat/internal/worktree/hostgit"
)

// A sandbox used for several SyncOuts keeps its uncommitted changes and
// untracked files between them, and each SyncOut sends them again. Applying
// them twice would fail (or duplicate work), so SyncOut remembers, in the
// worktree's own git directory, exactly what it left in the worktree: the
// paths it changed (all clean before) and their content afterwards. The next
// SyncOut from the same sandbox (same sync id) takes those changes back
// before applying, but only when every one of those paths is still exactly
// as it left it; otherwise it leaves the worktree alone.

const stateFile = "moat-sync-state.json"

type pathState struct {
	Code   string `json:"code"`             // git status XY
	Kind   string `json:"kind"`             // "file", "link" or "absent"
	Size   int64  `json:"size,omitempty"`   //
	Sum    string `json:"sha256,omitempty"` // of a file
	Target string `json:"target,omitempty"` // of a link
}

type syncState struct {
	SyncID string               `json:"sync_id"`
	Paths  map[string]pathState `json:"paths"`
}

func (o *out) statePath() string { return filepath.Join(o.repo.GitDir, stateFile) }

// snapshot describes every path git status lists in the worktree.
func (o *out) snapshot(ctx context.Context) (map[string]pathState, error) {
	st, err := o.git(ctx, o.wt, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames")
	if err != nil {
		return nil, err
	}
	snap := map[string]pathState{}
	for _, rec := range hostgit.SplitZ(st) {
		if len(rec) < 4 {
			continue
		}
		p := rec[3:]
		ps, err := describe(filepath.Join(o.wt, filepath.FromSlash(p)))
		if err != nil {
			return nil, err
		}
		ps.Code = rec[:2]
		snap[p] = ps
	}
	return snap, nil
}

func describe(p string) (pathState, error) {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return pathState{Kind: "absent"}, nil
	case err != nil:
		return pathState{}, err
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		return pathState{Kind: "link", Target: t}, err
	case fi.Mode().IsRegular():
		f, err := os.Open(p)
		if err != nil {
			return pathState{}, err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return pathState{}, err
		}
		return pathState{Kind: "file", Size: fi.Size(), Sum: hex.EncodeToString(h.Sum(nil)) + fmt.Sprintf(":%o", fi.Mode().Perm()&0o111)}, nil
	}
	return pathState{}, fmt.Errorf("%s is neither a file nor a link", p)
}

// recordState remembers what this SyncOut changed in the worktree (pre is
// the snapshot before the uncommitted changes and untracked files went in).
func (o *out) recordState(ctx context.Context, pre map[string]pathState) {
	o.clearState()
	post, err := o.snapshot(ctx)
	if err != nil || o.syncID == "" {
		return
	}
	changed := map[string]pathState{}
	for p, ps := range post {
		if old, ok := pre[p]; !ok || old != ps {
			if ok {
				return // it was dirty before: cannot be taken back safely
			}
			changed[p] = ps
		}
	}
	for p := range pre {
		if _, ok := post[p]; !ok {
			return
		}
	}
	if len(changed) == 0 {
		return
	}
	data, err := json.Marshal(syncState{SyncID: o.syncID, Paths: changed})
	if err == nil {
		err = writeNew(o.statePath(), data)
	}
	if err != nil {
		o.log("sync-out: could not record what was applied: %v", err)
	}
}

// writeNew replaces the file at p by a new one holding data. O_EXCL makes
// the create fail on a link planted there rather than write through it.
func writeNew(p string, data []byte) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (o *out) clearState() { _ = os.Remove(o.statePath()) }

// revertPrevious takes back what the previous SyncOut from this sandbox
// left in the worktree, when nobody changed it since.
func (o *out) revertPrevious(ctx context.Context) {
	data, err := os.ReadFile(o.statePath())
	if err != nil {
		return
	}
	o.clearState()
	var st syncState
	if json.Unmarshal(data, &st) != nil || st.SyncID == "" || st.SyncID != o.syncID {
		return
	}
	cur, err := o.snapshot(ctx)
	if err != nil {
		o.log("sync-out: not taking back the previous sync-out's changes: %v", err)
		return
	}
	var tracked, untrackedPaths []string
	for _, p := range slices.Sorted(maps.Keys(st.Paths)) {
		if cur[p] != st.Paths[p] {
			o.log("sync-out: %s changed in the worktree since the last sync-out; applying on top of the worktree as it is", p)
			return
		}
		if st.Paths[p].Code == "??" {
			untrackedPaths = append(untrackedPaths, p)
		} else {
			tracked = append(tracked, p)
		}
	}
	if len(tracked) > 0 {
		c := hostgit.Cmd{
			Dir: o.wt, Timeout: o.timeout,
			Args:  []string{"--literal-pathspecs", "checkout", "-q", "HEAD", "--pathspec-from-file=-", "--pathspec-file-nul"},
			Stdin: strings.NewReader(strings.Join(tracked, "\x00") + "\x00"),
		}
		if _, err := c.Run(ctx); err != nil {
			o.log("sync-out: could not take back the previous sync-out's changes: %v", err)
			return
		}
	}
	root, err := os.OpenRoot(o.wt)
	if err != nil {
		return
	}
	defer root.Close()
	for _, p := range untrackedPaths {
		rel := filepath.FromSlash(p)
		_ = root.Remove(rel)
		for d := filepath.Dir(rel); d != "."; d = filepath.Dir(d) {
			if root.Remove(d) != nil { // stops at the first non-empty directory
				break
			}
		}
	}
	o.log("sync-out: took back the %d change(s) the previous sync-out from this sandbox left uncommitted", len(st.Paths))
}
