//go:build !unix

package procmark

import "errors"

func kill(int) error { return errors.New("procmark: not supported on this system") }
