//go:build !unix

package hostgit

import "os/exec"

func ownGroup(cmd *exec.Cmd) {}
