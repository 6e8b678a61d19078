//go:build unix

package hostgit

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadTextRefusesOddFiles: a repository can point the files moat reads
// itself at a FIFO or a device; reading must fail at once, not hang or
// fill memory.
func TestReadTextRefusesOddFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxTextFile+1), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{fifo: "not a regular file", zero: "not a regular file", big: "larger than"} {
		if _, err := ReadText(nil, name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadText(%s) = %v, want an error saying %q", filepath.Base(name), err, want)
		}
	}
	ok := filepath.Join(dir, "ok")
	os.WriteFile(ok, []byte("[core]\n"), 0o644)
	if data, err := ReadText(nil, ok); err != nil || string(data) != "[core]\n" {
		t.Errorf("ReadText(ok) = %q, %v", data, err)
	}
}
