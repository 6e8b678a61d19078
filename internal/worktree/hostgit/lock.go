package hostgit

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// Lock takes moat's lock for the repository whose shared git directory is
// commonDir, waiting until it is free or ctx ends. Hold it only around
// worktree, branch and info/exclude changes, and call the returned function
// to release it.
//
// The lock works across processes (flock(2) on <commonDir>/moat.lock on
// Unix; on other systems a lock file made with O_EXCL) and between
// goroutines of one process.
func Lock(ctx context.Context, commonDir string) (unlock func(), err error) {
	path, err := filepath.Abs(filepath.Join(commonDir, lockName))
	if err != nil {
		return nil, err
	}
	sem := processSem(path)
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for moat's repository lock %s (another moat run in this repository holds it): %w", path, ctx.Err())
	}
	release, err := LockFile(ctx, path)
	if err != nil {
		<-sem
		return nil, fmt.Errorf("taking moat's repository lock %s: %w", path, err)
	}
	return sync.OnceFunc(func() {
		release()
		<-sem
	}), nil
}

// pollInterval is how often a busy lock is tried again.
const pollInterval = 20 * time.Millisecond

var (
	semMu sync.Mutex
	sems  = map[string]chan struct{}{}
)

// processSem returns the in-process semaphore for one lock file: a flock
// taken twice by one process through two descriptors does exclude, but a
// lock file does not know which goroutine made it.
func processSem(path string) chan struct{} {
	semMu.Lock()
	defer semMu.Unlock()
	s, ok := sems[path]
	if !ok {
		s = make(chan struct{}, 1)
		sems[path] = s
	}
	return s
}

// wait sleeps one poll interval or until ctx ends.
func wait(ctx context.Context) error {
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
