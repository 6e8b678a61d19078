package main

import (
	"errors"
	"testing"
)

func TestErrorTextNoDanglingColon(t *testing.T) {
	for in, want := range map[string]string{
		"remove /x: ":                 "remove /x",
		"tar exited 2:\n":             "tar exited 2",
		"a: b:  \n\t":                 "a: b",
		"exited with code 4:\nwhy\n":  "exited with code 4:\nwhy",
		"moat: agent failed: nothing": "moat: agent failed: nothing",
	} {
		if got := errorText(errors.New(in)); got != want {
			t.Errorf("errorText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWarnHandler(t *testing.T) {
	var got []string
	log := newWarnLogger(func(s string) { got = append(got, s) }).With("dir", "/tmp/x")
	log.Debug("not shown")
	log.Info("not shown either")
	log.Warn("bwrap not found", "n", 2)
	log.Error("gone")
	want := []string{"bwrap not found (dir /tmp/x, n 2)", "gone (dir /tmp/x)"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("warnings = %q, want %q", got, want)
	}
}
