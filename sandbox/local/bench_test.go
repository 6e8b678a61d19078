//go:build linux

package local

import (
	"context"
	"testing"
	"time"

	"github.com/moatdev/moat/sandbox"
)

// BenchmarkExecNetwork times one Exec of "true" under bwrap for each
// network, side by side in the same run, and logs the ratio of isolated
// (and none) to host, with -v: what the network costs per command.
func BenchmarkExecNetwork(b *testing.B) {
	requireBwrap(b)
	perExec := map[Network]time.Duration{}
	for _, n := range []Network{NetworkHost, NetworkIsolated, NetworkNone} {
		b.Run(string(n), func(b *testing.B) {
			p := New(Config{Root: b.TempDir(), Logger: quiet, Network: n})
			h, err := p.Create(b.Context(), sandbox.CreateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close(context.Background())
			if r, err := h.Exec(b.Context(), "true", sandbox.ExecOptions{}); err != nil || r.ExitCode != 0 {
				b.Fatalf("warm-up: %v %+v", err, r)
			}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if r, err := h.Exec(b.Context(), "true", sandbox.ExecOptions{}); err != nil || r.ExitCode != 0 {
					b.Fatalf("%v %+v", err, r)
				}
			}
			perExec[n] = time.Since(start) / time.Duration(b.N)
		})
	}
	host := perExec[NetworkHost]
	if host == 0 {
		return
	}
	b.Logf("per Exec of true: host %v, isolated %v (%.2fx host, +%v), none %v (%.2fx host, +%v)",
		host,
		perExec[NetworkIsolated], float64(perExec[NetworkIsolated])/float64(host), perExec[NetworkIsolated]-host,
		perExec[NetworkNone], float64(perExec[NetworkNone])/float64(host), perExec[NetworkNone]-host)
}
