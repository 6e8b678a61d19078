// Package runlog writes the log of one run: a plain-text file, capped in
// size, with old logs pruned.
//
// # Format
//
// Every line starts with a character that says whose it is, so nothing the
// agent prints can pass for a line of moat's:
//
//	2026-12-07T10:33:48Z status: creating the sandbox (local)
//	2026-12-07T10:33:49Z [1] iteration_start: iteration 1/3
//	@ 2026-12-07T10:33:49Z
//	| what the agent said, one line of its text per line
//	> Bash(npm test)
//	! a line the agent wrote to stderr
//	2026-12-07T10:33:52Z [1] warning: agent: rate limited
//	  a further line of the warning above
//	--- moat: …
//
// That is:
//
//   - A digit starts one of moat's own lines: the time (UTC, RFC 3339), the
//     iteration in brackets when there is one, and the event kind before
//     the colon (a line without a kind is a note of the run's own, such as
//     "run started: …"). Its further lines, if any, start with two spaces.
//   - "@ " and a time is written before the agent's output whenever the
//     second has changed since the last time written: agent lines carry
//     no time of their own, so that a log grows little faster than the
//     output it records ("| y" for the agent's "y").
//   - "| " is the agent's text, "> " a tool call (Tool(argument)), "! " a
//     line of the agent's stderr; a text of several lines is written as
//     several such lines.
//   - "--- moat: " lines mark where the log was cut (see below).
//
// Text that is not moat's own (the agent's output, commit subjects, file
// names, errors that quote a sandbox) is made safe as internal/safetext
// says: control characters (but tab) in caret notation (ESC as ^[), C1
// controls and bytes that are not UTF-8 as \x escapes, bidirectional
// controls as \u escapes. So a log is safe to cat on a terminal, and a line
// break in the agent's text starts a new line with its mark.
//
// # Cap
//
// A log never grows past its limit (DefaultLimit unless told). It keeps
// the first half of what was written and as much of the end as fits,
// with a "--- moat: … bytes dropped here …" line between the two. While
// the run goes on, the end is kept in the file itself, as a ring: the file
// is never larger than the limit, even when moat is killed. Close puts the
// ring in order. A log whose run did not end that way may show a line
// "--- moat: the log wraps here …": the newest lines are above it, the
// oldest below.
package runlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moatdev/moat/internal/runid"
	"github.com/moatdev/moat/internal/safetext"
)

const (
	// DefaultLimit is the cap of a log unless told otherwise: 64 MiB.
	DefaultLimit int64 = 64 << 20
	// MinLimit is the smallest cap; a smaller one is raised to it.
	MinLimit int64 = 4 << 10
	// DefaultKeep is how many run logs Prune keeps unless told otherwise.
	DefaultKeep = 50
)

const (
	// flushBytes and flushDelay bound what is written but not yet in the
	// file: lines are gathered and written together, at the latest
	// flushDelay after the first of them.
	flushBytes = 64 << 10
	flushDelay = 100 * time.Millisecond
	// recent: Prune leaves a log written this recently (its run may still
	// be going).
	recent = time.Hour
)

// streamTail is room kept, in a log that is not a regular file, for the
// line Close adds after the cap marker.
const streamTail = 100

// wrapMarker marks, in the ring at the end of a capped log that was not
// closed, where the newest bytes end and the oldest kept ones begin.
const wrapMarker = "\n--- moat: the log wraps here: its newest lines are above, the oldest kept ones below ---\n"

// Log is an open run log. Its methods are safe for concurrent use.
//
// Lines are gathered in a buffer; full buffers (and, flushDelay after its
// first line, a partial one) go to a goroutine of the log's own that
// writes them, so that a writer of many lines a second does not wait for
// the disk (nor for more than a few buffers ahead of it).
type Log struct {
	path  string
	limit int64 // < 0: no cap

	mu      sync.Mutex // guards the fields up to work
	buf     []byte
	timer   *time.Timer // flushes buf; armed while buf holds bytes
	armed   bool
	closed  bool
	lastSec int64 // the second of the last time written in the log

	work   chan chunk  // to the writer goroutine
	free   chan []byte // buffers it is done with
	exited chan struct{}

	emu sync.Mutex
	err error // the first write error

	// Owned by the writer goroutine (then by Close). The file is the head
	// (everything until the cap was reached), then, once capped, a marker
	// line and the ring, of ringSize bytes.
	f        *os.File
	seekable bool // a regular file we can read back: the ring works; else only the head is kept
	head     int64
	capped   bool
	ringOff  int64
	ringSize int64
	ringLen  int64 // bytes ever written to the ring
	total    int64 // bytes ever written to the log
}

// chunk is work for the writer goroutine: bytes to write, then a channel
// to close once they are written.
type chunk struct {
	p    []byte
	done chan struct{}
}

// Create creates dir (0700) when missing, and in it a new log for the run
// id, dir/<id>.log; the file must not exist yet. limit is the cap in
// bytes: 0 means DefaultLimit, < 0 no cap.
func Create(dir, id string, limit int64) (*Log, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return open(filepath.Join(dir, id+".log"), os.O_EXCL, limit)
}

// Open opens the log at path, which is created (0600) when missing and
// emptied when not. limit is as for Create.
func Open(path string, limit int64) (*Log, error) {
	return open(path, os.O_TRUNC, limit)
}

func open(path string, flag int, limit int64) (*Log, error) {
	// The log holds the agent's output, which may quote private code.
	// A regular file is opened to read too: Close reads its end back to
	// put it in order. Anything else (a FIFO, a terminal) is only written.
	mode := os.O_RDWR
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		mode = os.O_WRONLY
	}
	f, err := os.OpenFile(path, os.O_CREATE|mode|flag, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	readable := mode == os.O_RDWR
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit > 0 && limit < MinLimit:
		limit = MinLimit
	}
	l := &Log{path: path, limit: limit, f: f, lastSec: math.MinInt64, seekable: readable && st.Mode().IsRegular(), buf: newBuf(),
		work: make(chan chunk, 4), free: make(chan []byte, 4), exited: make(chan struct{})}
	l.timer = time.AfterFunc(time.Hour, l.tick)
	l.timer.Stop()
	go l.writer()
	return l, nil
}

// Path returns the log's file name.
func (l *Log) Path() string { return l.path }

// Line writes one line of moat's own: its time, the iteration when iter
// is not 0, kind (may be empty) and text (several lines are written as
// one line and continuation lines).
func (l *Log) Line(t time.Time, iter int, kind, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.buf = t.UTC().AppendFormat(l.buf, time.RFC3339)
	l.lastSec = t.Unix()
	if iter != 0 {
		l.buf = append(l.buf, " ["...)
		l.buf = strconv.AppendInt(l.buf, int64(iter), 10)
		l.buf = append(l.buf, ']')
	}
	l.buf = append(l.buf, ' ')
	if kind != "" {
		l.buf = append(l.buf, kind...)
		l.buf = append(l.buf, ": "...)
	}
	l.appendText(text, "  ")
	l.wrote()
}

// Agent marks for Log.Agent.
const (
	Text   = '|'
	Tool   = '>'
	Stderr = '!'
)

// Agent writes output of the agent at time t: mark (Text, Tool or Stderr),
// a space and text, one such line for each line of text.
func (l *Log) Agent(t time.Time, mark byte, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if s := t.Unix(); s != l.lastSec {
		l.lastSec = s
		l.buf = append(l.buf, "@ "...)
		l.buf = t.UTC().AppendFormat(l.buf, time.RFC3339)
		l.buf = append(l.buf, '\n')
	}
	l.buf = append(l.buf, mark, ' ')
	l.appendText(text, string([]byte{mark, ' '}))
	l.wrote()
}

// appendText appends text and a newline to l.buf, made safe (see
// internal/safetext), its line breaks starting new lines that begin with
// cont.
func (l *Log) appendText(text, cont string) {
	l.buf = safetext.AppendLines(l.buf, text, cont)
}

func newBuf() []byte { return make([]byte, 0, flushBytes+4096) }

// wrote follows a write to l.buf: it hands a full buffer to the writer,
// else makes sure a flush comes soon. l.mu is held.
func (l *Log) wrote() {
	if len(l.buf) >= flushBytes {
		l.handoff(nil)
		return
	}
	if !l.armed {
		l.armed = true
		l.timer.Reset(flushDelay)
	}
}

func (l *Log) tick() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed = false
	if !l.closed {
		l.handoff(nil)
	}
}

// handoff gives l.buf to the writer goroutine, and done to close once it
// is written (either may be empty); l.mu is held.
func (l *Log) handoff(done chan struct{}) {
	if len(l.buf) == 0 && done == nil {
		return
	}
	c := chunk{done: done}
	if len(l.buf) > 0 {
		c.p = l.buf
		select {
		case l.buf = <-l.free:
		default:
			l.buf = newBuf()
		}
	}
	l.work <- c
}

// writer writes what it is handed, until Close.
func (l *Log) writer() {
	defer close(l.exited)
	for c := range l.work {
		if c.p != nil {
			l.write(c.p)
			if cap(c.p) <= 2*flushBytes { // not one grown by a huge line
				select {
				case l.free <- c.p[:0]:
				default:
				}
			}
		}
		if c.done != nil {
			close(c.done)
		}
	}
}

// Flush writes out what is buffered, and returns the first error writing
// the log met.
func (l *Log) Flush() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return l.firstErr()
	}
	done := make(chan struct{})
	l.handoff(done)
	l.mu.Unlock()
	<-done
	return l.firstErr()
}

func (l *Log) firstErr() error {
	l.emu.Lock()
	defer l.emu.Unlock()
	return l.err
}

// Write writes p to the log as it is (it should be whole lines); it
// implements io.Writer and never fails (errors are reported by Close).
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.buf = append(l.buf, p...)
		l.wrote()
	}
	return len(p), nil
}

// capMarker is the line at the end of the head while the log is being
// written; Close replaces it with dropMarker.
func (l *Log) capMarker() string {
	if !l.seekable {
		return fmt.Sprintf("--- moat: the log reached its cap of %s here; the rest is dropped ---\n", size(l.limit))
	}
	return fmt.Sprintf("--- moat: the log reached its cap of %s here; the end of the run follows ---\n", size(l.limit))
}

func (l *Log) dropMarker(dropped int64) string {
	return fmt.Sprintf("--- moat: %d bytes of the log dropped here (its cap is %s); the end of the run follows ---\n", dropped, size(l.limit))
}

func size(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// write writes p to the file: to the head, else to the ring. It runs
// in the writer goroutine.
func (l *Log) write(p []byte) {
	if len(p) == 0 || l.firstErr() != nil {
		return
	}
	l.total += int64(len(p))
	if l.limit < 0 {
		l.setErr(writeFull(l.f, p))
		return
	}
	if !l.capped {
		headMax := l.limit / 2
		if !l.seekable {
			headMax = l.limit - int64(len(l.capMarker())) - streamTail
		}
		room := headMax - l.head
		if int64(len(p)) <= room {
			l.setErr(writeFull(l.f, p))
			l.head += int64(len(p))
			return
		}
		// The head ends at a line's end, if there is one in reach.
		cut := bytes.LastIndexByte(p[:room], '\n') + 1
		if cut == 0 && l.head == 0 {
			cut = int(room)
		}
		l.setErr(writeFull(l.f, p[:cut]))
		l.head += int64(cut)
		p = p[cut:]
		marker := l.capMarker()
		l.setErr(writeFull(l.f, []byte(marker)))
		l.capped = true
		l.ringOff = l.head + int64(len(marker))
		l.ringSize = l.limit - l.ringOff
	}
	if !l.seekable {
		return // dropped: a pipe or a terminal has no ring
	}
	l.writeRing(p)
}

// ringData is how many bytes of the ring hold kept data: the rest is room
// for wrapMarker.
func (l *Log) ringData() int64 { return l.ringSize - int64(len(wrapMarker)) }

// writeRing writes p to the ring, then, once the ring has wrapped, the
// wrap marker after it (over bytes already lost). l.mu is held.
func (l *Log) writeRing(p []byte) {
	if c := l.ringData(); int64(len(p)) > c {
		skip := int64(len(p)) - c
		l.ringLen += skip
		p = p[skip:]
	}
	l.ringAt(l.ringLen, p)
	l.ringLen += int64(len(p))
	if l.ringLen > l.ringData() {
		l.ringAt(l.ringLen, []byte(wrapMarker))
	}
}

// ringAt writes p at position pos (mod the ring's size) of the ring.
func (l *Log) ringAt(pos int64, p []byte) {
	for len(p) > 0 {
		at := pos % l.ringSize
		n := min(int64(len(p)), l.ringSize-at)
		_, err := l.f.WriteAt(p[:n], l.ringOff+at)
		l.setErr(err)
		p, pos = p[n:], pos+n
	}
}

func (l *Log) setErr(err error) {
	l.emu.Lock()
	defer l.emu.Unlock()
	if err != nil && l.err == nil {
		l.err = err
	}
}

func writeFull(w io.Writer, p []byte) error {
	_, err := w.Write(p) // os.File writes all or fails
	return err
}

// Close writes out what is buffered, puts the end of a capped log in
// order behind a line saying how much was dropped, and closes the file.
// It returns the first error writing the log met.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.exited
		return l.firstErr()
	}
	l.closed = true
	l.timer.Stop()
	l.handoff(nil)
	close(l.work)
	l.mu.Unlock()
	<-l.exited // the writer's state is Close's now
	switch {
	case !l.capped:
	case !l.seekable:
		// No ring: say how much followed the cap.
		l.setErr(writeFull(l.f, []byte(fmt.Sprintf("--- moat: %d bytes of the log dropped after its cap ---\n", l.total-l.head))))
	default:
		l.setErr(l.finish())
	}
	l.setErr(l.f.Close())
	return l.firstErr()
}

// finish rewrites the ring of a capped log as one piece in order, behind
// the drop marker: through a temporary file, so memory stays small.
func (l *Log) finish() error {
	if err := l.firstErr(); err != nil {
		return err
	}
	// The kept end: the last ringData bytes, or all if fewer were written.
	start, n := int64(0), l.ringLen
	if l.ringLen > l.ringData() {
		start, n = l.ringLen-l.ringData(), l.ringData()
	}
	tmp, err := os.CreateTemp(filepath.Dir(l.path), ".runlog-*")
	if err != nil {
		return fmt.Errorf("runlog: putting the capped log in order: %w", err)
	}
	os.Remove(tmp.Name())
	defer tmp.Close()
	buf := make([]byte, 256<<10)
	kept := int64(0)
	for done := int64(0); done < n; {
		at := (start + done) % l.ringSize
		chunk := buf[:min(int64(len(buf)), n-done, l.ringSize-at)]
		if _, err := l.f.ReadAt(chunk, l.ringOff+at); err != nil {
			return fmt.Errorf("runlog: reading the end of the capped log back: %w", err)
		}
		if done == 0 && start > 0 {
			// A wrapped ring starts in the middle of a line: drop that
			// piece, unless the line is longer than what is there.
			if i := bytes.IndexByte(chunk[:min(len(chunk), 64<<10)], '\n'); i >= 0 {
				chunk = chunk[i+1:]
				done += int64(i + 1)
			}
		}
		done += int64(len(chunk))
		if _, err := tmp.Write(chunk); err != nil {
			return err
		}
		kept += int64(len(chunk))
	}
	return l.rewrite(tmp, kept)
}

// rewrite writes the drop marker after the head (none when nothing was
// dropped after all) and the kept end (in tmp) after it, and cuts the file
// there.
func (l *Log) rewrite(tmp *os.File, kept int64) error {
	marker := ""
	if dropped := l.total - l.head - kept; dropped > 0 {
		marker = l.dropMarker(dropped)
	}
	if _, err := l.f.WriteAt([]byte(marker), l.head); err != nil {
		return err
	}
	off := l.head + int64(len(marker))
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	for {
		n, err := tmp.Read(buf)
		if n > 0 {
			if _, werr := l.f.WriteAt(buf[:n], off); werr != nil {
				return werr
			}
			off += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	return l.f.Truncate(off)
}

// Prune removes the oldest run logs in dir (files named <run id>.log, and
// the <time>.log of older moat versions), so that keep remain; keep <= 0
// means DefaultKeep. Other files are left alone, and so is a log written
// to within the last hour, whose run may still be going.
func Prune(dir string, keep int) error {
	if keep <= 0 {
		keep = DefaultKeep
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var logs []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".log"); ok && e.Type().IsRegular() && isRunName(name) {
			logs = append(logs, e.Name())
		}
	}
	if len(logs) <= keep {
		return nil
	}
	slices.Sort(logs) // by time: the names start with it
	var first error
	for _, name := range logs[:len(logs)-keep] {
		path := filepath.Join(dir, name)
		if st, err := os.Lstat(path); err != nil || time.Since(st.ModTime()) < recent {
			continue
		}
		if err := os.Remove(path); err != nil && first == nil && !errors.Is(err, os.ErrNotExist) {
			first = err
		}
	}
	return first
}

// isRunName reports whether name (without .log) names a run's log: a run
// id, or the "20060102-150405" of moat's first versions.
func isRunName(name string) bool {
	if runid.Valid(name) {
		return true
	}
	_, err := time.Parse("20060102-150405", name)
	return err == nil && len(name) == 15
}
