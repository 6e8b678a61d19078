package sshx

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The bucket, on a clock the test moves.
func TestDialLimiterReserve(t *testing.T) {
	l := NewDialLimiter(200*time.Millisecond, 2)
	t0 := time.Unix(1000, 0)
	var got []time.Duration
	for range 5 {
		got = append(got, l.reserve(t0))
	}
	want := []time.Duration{0, 0, 200 * time.Millisecond, 400 * time.Millisecond, 600 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	// A second after the last token was due, the bucket is full again.
	t1 := t0.Add(600*time.Millisecond + time.Second)
	if d := l.reserve(t1); d != 0 {
		t.Fatalf("wait %v after refill", d)
	}
	if d := l.reserve(t1); d != 0 {
		t.Fatalf("wait %v after refill (burst)", d)
	}
	if d := l.reserve(t1); d != 200*time.Millisecond {
		t.Fatalf("wait %v past the burst", d)
	}
}

// Five waits on a burst-2, one-per-200ms bucket take at least 600ms.
func TestDialLimiterWait(t *testing.T) {
	t.Parallel()
	l := NewDialLimiter(200*time.Millisecond, 2)
	start := time.Now()
	for range 5 {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	d := time.Since(start)
	if d < 590*time.Millisecond || d > 3*time.Second {
		t.Fatalf("5 waits took %v; want about 600ms", d)
	}

	// A cancelled wait returns at its deadline, long before the next
	// token (10s away: the bound leaves room for a loaded machine), and
	// gives its token back.
	slow := NewDialLimiter(10*time.Second, 1)
	if err := slow.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := slow.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("cancelled wait took %v", d)
	}
	// It gave its token back: the next is due in under 10s, not 20s.
	if d := slow.reserve(time.Now()); d > 10*time.Second {
		t.Errorf("the cancelled wait kept its token: the next is due in %v", d)
	}
}

func TestDefaultDialLimiter(t *testing.T) {
	a, b := DefaultDialLimiter("h:22"), DefaultDialLimiter("h:22")
	if a != b || a == DefaultDialLimiter("h:2222") {
		t.Fatal("not one limiter per host:port")
	}
	if a.every != DefaultDialEvery || a.burst != DefaultDialBurst {
		t.Fatalf("rate %v burst %v", a.every, a.burst)
	}
	if d := NewDialLimiter(0, 1).reserve(time.Now()); d != 0 {
		t.Fatal("every=0 limits")
	}
}
