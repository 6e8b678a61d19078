package sshx

import (
	"context"
	"sync"
	"time"
)

// DialLimiter is a token bucket limiting new connections.
type DialLimiter struct {
	mu     sync.Mutex
	every  time.Duration
	burst  float64
	tokens float64
	last   time.Time
}

// Default rate for new connections to one host:port: exe.dev silently drops
// the SYNs of an address that opens connections too fast.
const (
	DefaultDialBurst = 3
	DefaultDialEvery = time.Second
)

// NewDialLimiter allows burst connections at once, then one per every.
// every <= 0 means no limit.
func NewDialLimiter(every time.Duration, burst int) *DialLimiter {
	if burst < 1 {
		burst = 1
	}
	return &DialLimiter{every: every, burst: float64(burst), tokens: float64(burst)}
}

var defaultLimiters struct {
	sync.Mutex
	m map[string]*DialLimiter
}

// DefaultDialLimiter returns the process-wide limiter for host:port (burst
// DefaultDialBurst, then one per DefaultDialEvery), which a Client uses when
// its Config has no Limiter.
func DefaultDialLimiter(hostport string) *DialLimiter {
	defaultLimiters.Lock()
	defer defaultLimiters.Unlock()
	if defaultLimiters.m == nil {
		defaultLimiters.m = map[string]*DialLimiter{}
	}
	l := defaultLimiters.m[hostport]
	if l == nil {
		l = NewDialLimiter(DefaultDialEvery, DefaultDialBurst)
		defaultLimiters.m[hostport] = l
	}
	return l
}

// Wait blocks until a new connection may be made or ctx ends.
func (l *DialLimiter) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := l.reserve(time.Now())
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		l.unreserve()
		return ctx.Err()
	}
}

// reserve takes a token and returns how long to wait until it is due.
func (l *DialLimiter) reserve(now time.Time) time.Duration {
	if l == nil || l.every <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		if elapsed := now.Sub(l.last); elapsed > 0 {
			l.tokens += float64(elapsed) / float64(l.every)
			if l.tokens > l.burst {
				l.tokens = l.burst
			}
		}
	}
	if now.After(l.last) {
		l.last = now
	}
	l.tokens--
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens * float64(l.every))
}

// unreserve gives back a token taken by a Wait that was abandoned.
func (l *DialLimiter) unreserve() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens++
	if l.tokens > l.burst {
		l.tokens = l.burst
	}
}
