//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package hostgit

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

const lockName = "moat.lock"

// LockFile takes an exclusive flock on path, polling so that ctx can end the
// wait. The file stays; only the lock is released.
func LockFile(ctx context.Context, path string) (func(), error) {
	// O_NOFOLLOW: a link planted there must not make moat create or open
	// a file elsewhere.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("flock: %w", err)
		}
		if err := wait(ctx); err != nil {
			f.Close()
			return nil, fmt.Errorf("another moat run in this repository holds it: %w", err)
		}
	}
}
