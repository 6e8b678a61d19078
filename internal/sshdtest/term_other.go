//go:build !unix

package sshdtest

import "os"

func terminate(p *os.Process) error { return p.Kill() }
