//go:build !unix

package local

import (
	"context"
	"fmt"
	"runtime"

	"github.com/moatdev/moat/sandbox"
)

func platformSupported() error {
	return fmt.Errorf("local: the local sandbox provider is not supported on %s; use it on Linux (or macOS, without isolation)", runtime.GOOS)
}

const openNonblock = 0

// proc is never created on this platform: Create fails first.
type proc struct{}

func (p *proc) kill() {}

func (h *handle) Exec(ctx context.Context, cmd string, opts sandbox.ExecOptions) (sandbox.ExecResult, error) {
	return sandbox.ExecResult{}, platformSupported()
}
