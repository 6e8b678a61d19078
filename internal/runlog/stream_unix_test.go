//go:build unix

package runlog

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStream: a log that is not a regular file (a FIFO, a terminal) keeps
// its start up to the cap and then says how much it dropped.
func TestStream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// Opened without waiting for a writer; read once the log is open.
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const limit = 8 << 10
	l, err := Open(path, limit)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		got <- string(b)
	}()
	for range 1000 {
		l.Agent(time.Unix(0, 0), Text, "twenty bytes of text")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	log := <-got
	if len(log) > limit {
		t.Errorf("%d bytes through the FIFO; the cap is %d", len(log), limit)
	}
	if !strings.HasPrefix(log, "@ 1970-01-01T00:00:00Z\n| twenty bytes of text\n") ||
		!strings.Contains(log, "reached its cap of 8 KiB here") ||
		!strings.HasSuffix(log, " bytes of the log dropped after its cap ---\n") {
		t.Errorf("log through a FIFO:\n%s", log)
	}
}
