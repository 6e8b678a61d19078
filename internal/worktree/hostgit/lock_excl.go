//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package hostgit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// On systems without flock (Windows) the lock is the existence of a file made
// with O_EXCL. A lock file left by a process that died is taken over once it
// is older than staleAfter; a live holder refreshes it well before that.
const (
	lockName   = "moat-excl.lock"
	staleAfter = 10 * time.Minute
)

func LockFile(ctx context.Context, path string) (func(), error) {
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			fmt.Fprintf(f, "pid %d since %s\n", os.Getpid(), time.Now().Format(time.RFC3339))
			f.Close()
			// A holder refreshes the file, so a lock held for a long run
			// (a named branch's) is never taken for a dead one's.
			stop := make(chan struct{})
			go func() {
				t := time.NewTicker(staleAfter / 4)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case now := <-t.C:
						_ = os.Chtimes(path, now, now)
					}
				}
			}()
			var once sync.Once
			return func() {
				once.Do(func() {
					close(stop)
					_ = os.Remove(path)
				})
			}, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if st, serr := os.Stat(path); serr == nil && time.Since(st.ModTime()) > staleAfter {
			_ = os.Remove(path) // stale: its holder died
			continue
		}
		if err := wait(ctx); err != nil {
			return nil, fmt.Errorf("another moat run in this repository holds it (remove %s if no moat run is active): %w", path, err)
		}
	}
}
