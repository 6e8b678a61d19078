package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/moatdev/moat/internal/config"
	"github.com/moatdev/moat/internal/trust"
	"github.com/moatdev/moat/internal/worktree/hostgit"
)

// project is the repository a command works on, with its moat settings.
type project struct {
	// Root is the working tree's top directory.
	Root string
	// Config is .moat/config.toml; ConfigFound says whether it exists.
	Config      config.Config
	ConfigFound bool
	// Env is .moat/.env, resolved against the process environment.
	Env config.Env
	// ConfigHash is the SHA-256 of the config file's content ("" when
	// there is none); Trusted says the user trusted that content (moat
	// trust, or moat init wrote it).
	ConfigHash string
	Trusted    bool
}

// loadProject finds the repository holding dir ("" is the working
// directory) and reads its .moat/config.toml and .moat/.env.
func loadProject(ctx context.Context, dir string) (*project, error) {
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		dir = wd
	}
	repo, err := locateRepo(ctx, dir)
	if err != nil {
		return nil, err
	}
	p := &project{Root: repo.TopLevel}
	var data []byte
	p.Config, data, p.ConfigFound, err = config.LoadData(p.Root)
	if err != nil {
		return nil, usageErrorf("%w", err)
	}
	// prompt_file and copy stay inside the repository, trusted or not.
	if err := p.Config.CheckPaths(p.Root); err != nil {
		return nil, usageErrorf("%w", err)
	}
	if p.ConfigFound {
		p.ConfigHash = trust.Hash(data)
		store, err := trust.Default()
		if err == nil {
			p.Trusted, err = store.Trusted(p.Root, p.ConfigHash)
		}
		if err != nil && len(p.Config.HostSettings()) > 0 {
			return nil, err
		}
	}
	p.Env, err = config.LoadEnv(p.Root, os.LookupEnv)
	if err != nil {
		return nil, usageErrorf("%w", err)
	}
	return p, nil
}

// locateRepo finds the repository holding dir; outside one, the error
// says what to do, without git's own words.
func locateRepo(ctx context.Context, dir string) (hostgit.Repo, error) {
	repo, err := hostgit.Locate(ctx, 30*time.Second, dir)
	var nr *hostgit.NotRepoError
	if errors.As(err, &nr) {
		return repo, errors.New(nr.Error() + " (or pass --repo DIR)")
	}
	return repo, err
}

// requireCommit fails, saying how to make one, when the repository has
// no commit yet: a run and a sandbox start from one. It is checked before
// a sandbox is made.
func (p *project) requireCommit(ctx context.Context) error {
	_, err := hostgit.Head(ctx, 30*time.Second, p.Root)
	return err
}

// path resolves a path from the config file, which is relative to the
// repository root.
func (p *project) path(rel string) string {
	if rel == "" || filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(p.Root, rel)
}

// usageError is bad input from the user: a flag, an argument or a config
// file. moat exits 2 for it.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}
