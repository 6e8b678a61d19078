package runid

import (
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		if !Valid(id) {
			t.Fatalf("New() = %q: not Valid", id)
		}
		if seen[id] {
			t.Fatalf("New() returned %q twice", id)
		}
		seen[id] = true
		when, ok := Time(id)
		if !ok || when.Before(start) || when.After(time.Now()) {
			t.Fatalf("Time(%q) = %v, %v; the run started at about %v", id, when, ok, start)
		}
	}
}

func TestAtSortsByTime(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 33, 48, 0, time.UTC)
	a, b := At(t0), At(t0.Add(time.Second))
	if a[:15] != "20261207-103348" || !(a < b) {
		t.Errorf("At: %q then %q", a, b)
	}
	// The time is UTC whatever the zone of t.
	if c := At(t0.In(time.FixedZone("X", 5*3600))); c[:15] != a[:15] {
		t.Errorf("At in another zone: %q, want the time of %q", c, a)
	}
}

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		"20261207-103348-a1b2c3":  true,
		"20261207-103348-A1B2C3":  false,
		"20261207-103348":         false, // the old log names
		"20261307-103348-a1b2c3":  false, // month 13
		"20261207-103348-a1b2c":   false,
		"20261207-103348-a1b2c3x": false,
		"20261207_103348-a1b2c3":  false,
		"../../../etc/passwd-xxx": false,
	} {
		if got := Valid(s); got != want {
			t.Errorf("Valid(%q) = %v, want %v", s, got, want)
		}
	}
}
