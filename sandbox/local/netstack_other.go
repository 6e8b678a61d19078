//go:build !linux

package local

import (
	"context"
	"errors"
	"os"
	"os/exec"
)

// netns is never made on this platform: bwrap needs Linux.
type netns struct{}

func newNetns(context.Context, string, string, Network, string) (*netns, error) {
	return nil, errors.New("network namespaces need Linux")
}

func (n *netns) close()     {}
func (n *netns) stopStack() {}

// netPlan is never used on this platform.
type netPlan struct {
	prefix []string
	args   []string
	files  []*os.File
}

func newNetPlan(Network, *netns) (*netPlan, error) {
	return nil, errors.New("network namespaces need Linux")
}

func (n *netPlan) close()                  {}
func (n *netPlan) start(c *exec.Cmd) error { return c.Start() }

func joinFromThread() bool { return false }

func probeNet(context.Context, string, string, Network, string) error {
	return errors.New("network namespaces need Linux")
}
