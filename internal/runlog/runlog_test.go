package runlog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.log")
	l, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 10, 33, 48, 500, time.FixedZone("X", 3600))
	l.Line(t0, 0, "status", "creating the sandbox")
	l.Line(t0, 0, "", "run started")
	l.Agent(t0, Text, "same second: no time mark")
	l.Agent(t0.Add(time.Second), Text, "y")
	l.Agent(t0.Add(time.Second), Tool, "Bash(npm test)")
	l.Agent(t0.Add(time.Second), Stderr, "two\nlines")
	l.Agent(t0.Add(time.Second), Text, "\x1b]52;c;eA==\a red\x1b[31m del\x7f cr\r tab\t csi\u009b bad\xff é ✓")
	l.Line(t0.Add(2*time.Second), 3, "warning", "first\nsecond")
	l.Write([]byte("as is\n"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	want := `2026-12-07T09:33:48Z status: creating the sandbox
2026-12-07T09:33:48Z run started
| same second: no time mark
@ 2026-12-07T09:33:49Z
| y
> Bash(npm test)
! two
! lines
| ^[]52;c;eA==^G red^[[31m del^? cr^M tab	 csi\x9b bad\xff é ✓
2026-12-07T09:33:50Z [3] warning: first
  second
as is
`
	if got := readFile(t, path); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v; want 0600", st.Mode(), err)
	}
}

// numbered is the line Agent writes for line i.
func numbered(i int) string { return fmt.Sprintf("| line %07d %s\n", i, strings.Repeat("x", i%97)) }

// checkCapped checks that log is a start of all, cut at a line's end, a
// drop marker saying how much is missing, and the end of all.
func checkCapped(t *testing.T, log, all string, limit int64) {
	t.Helper()
	if int64(len(log)) > limit {
		t.Errorf("the log has %d bytes; its cap is %d", len(log), limit)
	}
	m := regexp.MustCompile(`(?m)^--- moat: (\d+) bytes of the log dropped here \(its cap is [^)]*\); the end of the run follows ---\n`).FindStringSubmatchIndex(log)
	if m == nil {
		t.Fatalf("no drop marker in the log:\n%.2000s", log)
	}
	head, tail := log[:m[0]], log[m[1]:]
	dropped, _ := strconv.Atoi(log[m[2]:m[3]])
	if !strings.HasPrefix(all, head) || !strings.HasSuffix(head, "\n") {
		t.Errorf("the log's start (%d bytes) is not the start of what was written, cut at a line's end", len(head))
	}
	if !strings.HasSuffix(all, tail) || !strings.HasPrefix(all[len(all)-len(tail)-1:], "\n") {
		t.Errorf("the log's end (%d bytes) is not the end of what was written, from a line's start", len(tail))
	}
	if len(head)+dropped+len(tail) != len(all) {
		t.Errorf("start %d + dropped %d + end %d != %d written", len(head), dropped, len(tail), len(all))
	}
	if int64(len(head)) < limit/2-200 || int64(len(tail)) < limit/2-500 {
		t.Errorf("start %d and end %d bytes: too little of the cap %d used", len(head), len(tail), limit)
	}
	if strings.Contains(log, "wraps here") {
		t.Errorf("a closed log still has the wrap marker")
	}
}

func TestCapKeepsStartAndEnd(t *testing.T) {
	const limit = 64 << 10
	for _, lines := range []int{800, 1500, 20000} { // past the head, then wrapped once, then many times
		t.Run(strconv.Itoa(lines), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run.log")
			l, err := Open(path, limit)
			if err != nil {
				t.Fatal(err)
			}
			var all strings.Builder
			now := time.Unix(1000, 0)
			for i := range lines {
				l.Agent(now, Text, strings.TrimSuffix(numbered(i)[2:], "\n"))
				all.WriteString(numbered(i))
				if i%37 == 0 {
					l.Flush()
					// Killed now, the file would still be within its cap.
					if st, err := os.Stat(path); err != nil || st.Size() > limit {
						t.Fatalf("after line %d the file has %d bytes (%v); the cap is %d", i, st.Size(), err, limit)
					}
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			want := "@ 1970-01-01T00:16:40Z\n" + all.String()
			if len(want) <= limit {
				// Past the head, but nothing dropped: the log is whole.
				if got := readFile(t, path); got != want {
					t.Errorf("a log of %d bytes under its cap of %d is not what was written:\n%s", len(want), limit, got)
				}
				return
			}
			checkCapped(t, readFile(t, path), want, limit)
		})
	}
}

// TestCapRandom writes lines of random sizes (some longer than the
// cap) in random batches.
func TestCapRandom(t *testing.T) {
	for seed := range uint64(30) {
		r := rand.New(rand.NewPCG(seed, 1))
		limit := MinLimit + r.Int64N(32<<10)
		path := filepath.Join(t.TempDir(), "run.log")
		l, err := Open(path, limit)
		if err != nil {
			t.Fatal(err)
		}
		var all bytes.Buffer
		total := r.IntN(int(8 * limit))
		for i := 0; all.Len() < total; i++ {
			n := r.IntN(200)
			if r.IntN(50) == 0 {
				n = r.IntN(int(2 * limit))
			}
			line := fmt.Appendf(nil, "%d %s\n", i, bytes.Repeat([]byte{'a' + byte(i%26)}, n))
			l.Write(line)
			all.Write(line)
			if r.IntN(10) == 0 {
				l.Flush()
				if st, _ := os.Stat(path); st.Size() > limit {
					t.Fatalf("seed %d: the file has %d bytes; the cap is %d", seed, st.Size(), limit)
				}
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		got := readFile(t, path)
		if int64(all.Len()) <= limit {
			if got != all.String() {
				t.Errorf("seed %d: a log under its cap is not what was written", seed)
			}
			continue
		}
		if int64(len(got)) > limit {
			t.Errorf("seed %d: %d bytes, cap %d", seed, len(got), limit)
		}
		if !strings.Contains(got, "bytes of the log dropped here") {
			t.Errorf("seed %d: no drop marker", seed)
		}
	}
}

// TestKilled: the file of a log that is never closed (moat was killed)
// is within its cap, holds the start, and shows where the end wraps.
func TestKilled(t *testing.T) {
	const limit = 16 << 10
	path := filepath.Join(t.TempDir(), "run.log")
	l, err := Open(path, limit)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		l.Agent(time.Unix(0, 0), Text, fmt.Sprintf("line %d", i))
	}
	l.Flush()
	got := readFile(t, path)
	if len(got) > limit {
		t.Errorf("%d bytes; the cap is %d", len(got), limit)
	}
	for _, want := range []string{"| line 0\n", "reached its cap of 16 KiB here", "the log wraps here", "| line 1999\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	l.Close()
}

func TestNoCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.log")
	l, err := Open(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for i := range 20000 {
		l.Write([]byte(numbered(i)))
		all.WriteString(numbered(i))
	}
	l.Close()
	if got := readFile(t, path); got != all.String() {
		t.Errorf("an uncapped log of %d bytes has %d", all.Len(), len(got))
	}
}

// TestFlushedSoon: a line reaches the file soon, without Flush or Close.
func TestFlushedSoon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.log")
	l, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Agent(time.Now(), Text, "hello")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(readFile(t, path), "| hello\n") {
		if time.Now().After(deadline) {
			t.Fatal("the line is not in the file after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOpenTruncatesCreateRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	os.WriteFile(path, []byte("old content\n"), 0o600)
	l, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("new\n"))
	l.Close()
	if got := readFile(t, path); got != "new\n" {
		t.Errorf("Open kept old content: %q", got)
	}
	sub := filepath.Join(dir, "logs")
	l, err = Create(sub, "20261207-103348-a1b2c3", 0)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if l.Path() != filepath.Join(sub, "20261207-103348-a1b2c3.log") {
		t.Errorf("Path() = %s", l.Path())
	}
	if st, err := os.Stat(sub); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("log directory: %v %v", st.Mode(), err)
	}
	if _, err := Create(sub, "20261207-103348-a1b2c3", 0); err == nil {
		t.Error("Create opened an existing log")
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	var runs []string
	for i := range 60 {
		name := fmt.Sprintf("20261207-1033%02d-%06x.log", i, i)
		if i%10 == 0 {
			name = fmt.Sprintf("20261207-1033%02d.log", i) // an older moat's name
		}
		runs = append(runs, name)
	}
	others := []string{"notes.log", "keep.txt", "20261207-103300-zzzzzz.log"}
	for _, name := range append(slices.Clone(runs), others...) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(path, old, old)
	}
	// The oldest of all is still being written.
	os.Chtimes(filepath.Join(dir, runs[1]), time.Now(), time.Now())
	if err := Prune(dir, 50); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := append([]string{runs[1]}, runs[10:]...)
	want = append(want, others...)
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("left:\n%v\nwant:\n%v", left, want)
	}
	if err := Prune(filepath.Join(dir, "none"), 5); err != nil {
		t.Errorf("Prune of a missing directory: %v", err)
	}
}
