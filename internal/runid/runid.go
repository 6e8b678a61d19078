// Package runid names runs. A run id is the time the run started, in UTC to
// the second, and six random hex digits: "20261207-103348-a1b2c3". Ids sort
// by time as strings, read as dates, and two runs started in the same
// second (even in two processes) get different ones. The run's log file
// (.moat/logs/<id>.log) and its refs (refs/moat/runs/<id>/…) are named
// with it; it is valid in a file name and in a git ref name.
package runid

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// layout is the time part of an id.
const layout = "20060102-150405"

// Len is the length of an id.
const Len = len(layout) + 1 + 6

// New returns a new run id for a run starting now.
func New() string { return At(time.Now()) }

// At returns a new run id for a run started at t.
func At(t time.Time) string {
	var b [3]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather)
	return t.UTC().Format(layout) + "-" + hex.EncodeToString(b[:])
}

// Valid reports whether s has the shape of a run id.
func Valid(s string) bool {
	if len(s) != Len || s[8] != '-' || s[15] != '-' {
		return false
	}
	if _, err := time.Parse(layout, s[:15]); err != nil {
		return false
	}
	for _, c := range []byte(s[16:]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Time returns when the run with id started; ok is false when id is not
// a run id.
func Time(id string) (t time.Time, ok bool) {
	if !Valid(id) {
		return time.Time{}, false
	}
	t, err := time.Parse(layout, id[:15])
	return t, err == nil
}
