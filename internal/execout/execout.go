// Package execout turns a command's output streams into live lines and a
// bounded tail, the two views sandbox.ExecOptions and sandbox.ExecResult
// promise.
package execout

import (
	"bytes"
	"io"
	"sync"

	"github.com/moatdev/moat/sandbox"
)

// Stream is an io.Writer for one output stream of a command. It hands every
// complete line to a callback as soon as it is written and keeps the last
// sandbox.TailBytes bytes for the result.
type Stream struct {
	mu      *sync.Mutex // shared by the streams of one command: callbacks never overlap
	stopped bool        // after Stop: no more callbacks
	onLine  func(string)
	raw     io.Writer // gets the bytes as they come; nil after a failed write
	partial []byte
	tail    tail
}

// NewPair returns the stdout and stderr streams of one command, delivering
// to opts' OnLine, OnStderrLine, Stdout and Stderr (any may be nil). The two
// streams share a lock, so their callbacks and writes never overlap.
func NewPair(opts sandbox.ExecOptions) (stdout, stderr *Stream) {
	mu := new(sync.Mutex)
	return &Stream{mu: mu, onLine: opts.OnLine, raw: opts.Stdout}, &Stream{mu: mu, onLine: opts.OnStderrLine, raw: opts.Stderr}
}

// Write implements io.Writer. It never fails.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tail.write(p)
	if s.raw != nil && !s.stopped {
		if _, err := s.raw.Write(p); err != nil {
			s.raw = nil // a closed pipe downstream: keep draining the command
		}
	}
	if s.onLine == nil || s.stopped {
		return len(p), nil
	}
	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			s.partial = append(s.partial, rest...)
			for len(s.partial) > sandbox.MaxLineBytes {
				s.onLine(string(s.partial[:sandbox.MaxLineBytes]))
				s.partial = append(s.partial[:0], s.partial[sandbox.MaxLineBytes:]...)
			}
			break
		}
		line := rest[:i]
		if len(s.partial) > 0 {
			line = append(s.partial, line...)
			s.partial = s.partial[:0]
		}
		for len(line) > sandbox.MaxLineBytes {
			s.onLine(string(line[:sandbox.MaxLineBytes]))
			line = line[sandbox.MaxLineBytes:]
		}
		s.onLine(string(bytes.TrimSuffix(line, []byte{'\r'})))
		rest = rest[i+1:]
	}
	return len(p), nil
}

// Flush delivers a final line that had no newline. Call it once, after the
// command's output has ended.
func (s *Stream) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onLine != nil && !s.stopped && len(s.partial) > 0 {
		s.onLine(string(bytes.TrimSuffix(s.partial, []byte{'\r'})))
	}
	s.partial = nil
}

// Stop ends the callbacks: output written later (by a copier that outlived
// its command) is kept in the tail but no longer delivered. Exec calls it
// before it returns, so callbacks never run after Exec.
func (s *Stream) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
}

// String returns the kept tail of the stream.
func (s *Stream) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tail.String()
}

// tail keeps the last sandbox.TailBytes bytes written to it. It compacts
// lazily, so memory stays below twice the bound.
type tail struct{ buf []byte }

func (t *tail) write(p []byte) {
	const max = sandbox.TailBytes
	if len(p) >= max {
		t.buf = append(t.buf[:0], p[len(p)-max:]...)
		return
	}
	if len(t.buf)+len(p) > 2*max {
		keep := max - len(p)
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-keep:]...)
	}
	t.buf = append(t.buf, p...)
}

func (t *tail) String() string {
	b := t.buf
	if len(b) > sandbox.TailBytes {
		b = b[len(b)-sandbox.TailBytes:]
	}
	return string(b)
}

// Capped keeps the first N bytes written to it and drops the rest. Writes
// never fail, so a command never blocks or errors on a full buffer; for
// short answers and error messages. It is safe for concurrent use.
type Capped struct {
	N   int
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (c *Capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.N - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Bytes returns a copy of what was kept.
func (c *Capped) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes())
}

// String returns what was kept.
func (c *Capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
