// Package trust records which repository configuration files the user has
// trusted: the SHA-256 of a file's exact content, keyed by the repository's
// absolute path, in a file under the user's config directory (never inside
// a repository, where the file's own author could write it).
package trust

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// FileName is the store's file in the user's config directory.
const FileName = "moat/trusted.json"

// Hash is the hex SHA-256 of a file's content, as recorded.
func Hash(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])
}

// Store is the set of trusted files, at Path.
type Store struct {
	Path string
}

// Default is the store in os.UserConfigDir() ($XDG_CONFIG_HOME or
// ~/.config on Linux).
func Default() (Store, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return Store{}, fmt.Errorf("trust: no config directory to record trust in: %w", err)
	}
	return Store{Path: filepath.Join(dir, filepath.FromSlash(FileName))}, nil
}

// Entry is what the store keeps for one repository.
type Entry struct {
	SHA256    string    `json:"sha256"`
	TrustedAt time.Time `json:"trusted_at"`
}

type file struct {
	Version int              `json:"version"`
	Repos   map[string]Entry `json:"repos"` // by absolute repository path
}

func (s Store) read() (file, error) {
	f := file{Version: 1, Repos: map[string]Entry{}}
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("trust: %w", err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("trust: %s is not a trust store (%v); remove it to start again", s.Path, err)
	}
	if f.Repos == nil {
		f.Repos = map[string]Entry{}
	}
	return f, nil
}

// Trusted reports whether the repository at repo (an absolute path) has
// the file whose content hashes to sha256 trusted.
func (s Store) Trusted(repo, sha256 string) (bool, error) {
	f, err := s.read()
	if err != nil {
		return false, err
	}
	e, ok := f.Repos[filepath.Clean(repo)]
	return ok && e.SHA256 == sha256, nil
}

// Trust records sha256 as the trusted content of the repository's file,
// replacing what was trusted before. The store is written with mode 0600,
// atomically (a temporary file renamed over it).
func (s Store) Trust(repo, sha256 string) error {
	if !filepath.IsAbs(repo) {
		return fmt.Errorf("trust: %s is not an absolute path", repo)
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	f, err := s.read()
	if err != nil {
		return err
	}
	f.Repos[filepath.Clean(repo)] = Entry{SHA256: sha256, TrustedAt: time.Now().UTC().Truncate(time.Second)}
	return s.write(f)
}

// Forget removes the repository's entry, if any.
func (s Store) Forget(repo string) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	f, err := s.read()
	if err != nil {
		return err
	}
	if _, ok := f.Repos[filepath.Clean(repo)]; !ok {
		return nil
	}
	delete(f.Repos, filepath.Clean(repo))
	return s.write(f)
}

// lock keeps two writers (moat init or moat trust in two repositories at
// once) from losing each other's entry: a lock file made with O_EXCL,
// taken over when older than staleLock (a writer that died).
func (s Store) lock() (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	name := s.Path + ".lock"
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(name) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("trust: %w", err)
		}
		if st, serr := os.Stat(name); serr == nil && time.Since(st.ModTime()) > staleLock {
			os.Remove(name)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("trust: %s is held by another moat; remove it if none is running", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const staleLock = 30 * time.Second

func (s Store) write(f file) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(s.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".trusted-*.json")
	if err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("trust: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("trust: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("trust: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.Path); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	return nil
}
