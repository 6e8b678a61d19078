// Package runid names runs: the time a run started and random hex, so two
// runs started in the same second still differ.
package runid

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// New returns a fresh run id such as 20261207-103348-a1b2c3: sortable by
// start time, safe in a file name and a git ref name.
func New() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return time.Now().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}
