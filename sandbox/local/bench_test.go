//go:build linux

package local

import (
	"context"
	"testing"
	"time"

	"github.com/moatdev/moat/sandbox"
)

var benchNetworks = []Network{NetworkHost, NetworkIsolated, NetworkNone}

// BenchmarkExecNetwork times one Exec of "true" under bwrap for each
// network: host, isolated and none one after the other, and then
// interleaved, where each round runs one Exec in a sandbox of each network,
// so that all three see the same load. interleaved reports each network's
// time per Exec (host-ms, isolated-ms, none-ms) and their ratios to host:
// what the network costs per command. As root it also times isolated
// joined through nsenter, as it is for other users (nsenter-ms). (-v also
// logs the ratios of the sequential runs.)
func BenchmarkExecNetwork(b *testing.B) {
	requireBwrap(b)
	perExec := map[Network]time.Duration{}
	for _, n := range benchNetworks {
		b.Run(string(n), func(b *testing.B) {
			h := benchSandbox(b, Config{Network: n})
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				benchTrue(b, h)
			}
			perExec[n] = time.Since(start) / time.Duration(b.N)
		})
	}
	if host := perExec[NetworkHost]; host > 0 {
		b.Logf("sequential, per Exec of true: host %v, isolated %v (%.2fx host), none %v (%.2fx host)",
			host, perExec[NetworkIsolated], float64(perExec[NetworkIsolated])/float64(host),
			perExec[NetworkNone], float64(perExec[NetworkNone])/float64(host))
	}
	b.Run("interleaved", func(b *testing.B) {
		const viaNsenter = "nsenter"
		names := []string{string(NetworkHost), string(NetworkIsolated), string(NetworkNone)}
		hs := map[string]sandbox.Handle{}
		for _, n := range benchNetworks {
			hs[string(n)] = benchSandbox(b, Config{Network: n})
		}
		if joinFromThread() {
			names = append(names, viaNsenter)
			hs[viaNsenter] = benchSandbox(b, Config{Network: NetworkIsolated, viaNsenter: true})
		}
		total := map[string]time.Duration{}
		b.ResetTimer()
		for i := range b.N {
			// Rotate the order, so that none always goes first.
			for k := range names {
				n := names[(i+k)%len(names)]
				start := time.Now()
				benchTrue(b, hs[n])
				total[n] += time.Since(start)
			}
		}
		ms := func(n string) float64 { return float64(total[n]) / float64(b.N) / 1e6 }
		for _, n := range names {
			b.ReportMetric(ms(n), n+"-ms")
		}
		b.ReportMetric(ms(string(NetworkIsolated))/ms(string(NetworkHost)), "isolated/host")
		b.ReportMetric(ms(string(NetworkNone))/ms(string(NetworkHost)), "none/host")
		b.ReportMetric(0, "ns/op")
	})
}

// benchSandbox is a sandbox of cfg that has run one command.
func benchSandbox(b *testing.B, cfg Config) sandbox.Handle {
	b.Helper()
	cfg.Root, cfg.Logger = b.TempDir(), quiet
	p := New(cfg)
	h, err := p.Create(b.Context(), sandbox.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close(context.Background()) })
	benchTrue(b, h) // warm-up
	return h
}

func benchTrue(b *testing.B, h sandbox.Handle) {
	if r, err := h.Exec(b.Context(), "true", sandbox.ExecOptions{}); err != nil || r.ExitCode != 0 {
		b.Fatalf("true: %v %+v", err, r)
	}
}
