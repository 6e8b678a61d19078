//go:build linux

package local

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatdev/moat/sandbox"
)

// serveInside starts "probe serve text" in a command of p's sandbox, which
// runs until the test ends, and returns the loopback port it listens on.
func (p *prober) serveInside(text string) int {
	p.t.Helper()
	ctx, cancel := context.WithCancel(p.t.Context())
	port := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		_, err := p.h.Exec(ctx, "./probe serve "+text, sandbox.ExecOptions{
			Env: map[string]string{probeEnv: "1", "GORACE": "atexit_sleep_ms=0"},
			OnLine: func(line string) {
				if n, err := strconv.Atoi(strings.TrimSpace(line)); err == nil {
					select {
					case port <- n:
					default:
					}
				}
			},
		})
		done <- err
	}()
	p.t.Cleanup(func() { cancel(); <-done })
	select {
	case n := <-port:
		return n
	case err := <-done:
		p.t.Fatalf("the server ended: %v", err)
	case <-time.After(30 * time.Second):
		p.t.Fatal("the server did not say its port")
	}
	return 0
}

// TestNetworkSharedWithinSandbox: the commands of one sandbox share its
// network as the processes of one machine do: a server one command runs
// on loopback answers another command of the sandbox, and neither the
// host nor another sandbox reaches it.
func TestNetworkSharedWithinSandbox(t *testing.T) {
	for _, v := range networkVariants() {
		n := v.cfg.Network
		if n == NetworkHost {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			s := secret(t)
			a := newProberWith(t, v.cfg)
			port := a.serveInside(s)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			if ok, out := a.inside("tcp", addr); !ok || out != s {
				t.Errorf("another command of the sandbox: reached %v, %q", ok, out)
			}
			if ok, out := a.inside("tcp", addr); !ok || out != s {
				t.Errorf("a third command of the sandbox: reached %v, %q", ok, out)
			}
			b := newProberWith(t, v.cfg)
			if ok, out := b.inside("tcp", addr); ok {
				t.Errorf("another sandbox reached the server: %q", out)
			}
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				// Something of the host's may listen on that port: it
				// must not be the sandbox's server.
				if got := onHostMaybe(addr); got == s {
					t.Errorf("the host reached the sandbox's server")
				}
			}
		})
	}
}

// onHostMaybe reads what addr answers on the host, or "".
func onHostMaybe(addr string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	b := make([]byte, 256)
	k, _ := c.Read(b)
	return string(b[:k])
}

// TestCreateCancelLeavesNothing: a Create cut short by its ctx, at any
// point, leaves no slirp4netns and no bwrap running, and a Create that
// succeeded leaves none after Close.
func TestCreateCancelLeavesNothing(t *testing.T) {
	requireStack(t)
	p := New(Config{Root: t.TempDir(), Logger: quiet})
	if _, err := p.Containment(t.Context()); err != nil { // probe first
		t.Fatal(err)
	}
	me := os.Getpid()
	failed, made := 0, 0
	for d := time.Duration(0); d < 60*time.Millisecond; d += 2 * time.Millisecond {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		h, err := p.Create(ctx, sandbox.CreateOptions{})
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Create with a %v deadline: %v, want a deadline error", d, err)
			}
			failed++
		} else {
			made++
			if err := h.Close(context.Background()); err != nil {
				t.Error(err)
			}
		}
		if left := descendants(me); len(left) > 0 {
			t.Fatalf("after Create with a %v deadline (err %v): processes left: %v", d, err, left)
		}
	}
	t.Logf("%d Creates cut short, %d made and closed", failed, made)
}

// TestIsolatedStackEnded: when slirp4netns ends under a sandbox, its
// commands are refused with an error that says so, rather than run
// without the network they were promised.
func TestIsolatedStackEnded(t *testing.T) {
	requireStack(t)
	h := create(t, New(Config{Root: t.TempDir(), Logger: quiet}))
	slirps := stacks(os.Getpid())
	if len(slirps) != 1 {
		t.Fatalf("%d slirp4netns, want 1", len(slirps))
	}
	if err := syscall.Kill(slirps[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var err error
	waitFor(t, "Exec to fail", func() bool {
		_, err = h.Exec(t.Context(), "true", sandbox.ExecOptions{})
		return err != nil
	})
	if !strings.Contains(err.Error(), "slirp4netns ended") {
		t.Errorf("Exec after slirp4netns was killed: %v", err)
	}
}
