package local

import (
	"runtime"
	"strings"
	"testing"
)

func TestCheckBwrap(t *testing.T) {
	path, err := CheckBwrap(t.Context())
	isolated := New(Config{}).Isolated()
	if (err == nil) != isolated {
		t.Fatalf("CheckBwrap = %q, %v; but Isolated() = %v", path, err, isolated)
	}
	if err == nil && path == "" {
		t.Fatal("no error and no path")
	}
	if err != nil && !strings.Contains(err.Error(), plainConsequence) {
		t.Errorf("error %q does not say what it means", err)
	}

	// Without bwrap on PATH: the error says so.
	if runtime.GOOS == "linux" {
		t.Setenv("PATH", t.TempDir())
		_, err := CheckBwrap(t.Context())
		if err == nil || !strings.Contains(err.Error(), "bwrap not found") || !strings.Contains(err.Error(), "install bubblewrap") {
			t.Errorf("CheckBwrap with no bwrap on PATH: %v", err)
		}
	}
}
