//go:build !linux

package local

import (
	"context"
	"errors"
	"os"
	"syscall"
)

// netPlan is never used on this platform: bwrap needs Linux.
type netPlan struct {
	args  []string
	files []*os.File
}

func newNetPlan(Network, string) (*netPlan, error) {
	return nil, errors.New("network namespaces need Linux")
}

func (n *netPlan) setAttr(*syscall.SysProcAttr)      {}
func (n *netPlan) started()                          {}
func (n *netPlan) attach(context.Context, int) error { return nil }
func (n *netPlan) stop()                             {}

func probeStack(context.Context, string, string) error {
	return errors.New("network namespaces need Linux")
}
