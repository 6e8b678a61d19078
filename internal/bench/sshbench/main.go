// Command sshbench measures moat's SSH transport against the OpenSSH client
// doing the same work the way the exe.dev proposal did (one ssh or scp
// process per operation), side by side, against one real sshd on loopback:
//
//	(a) sequential execs of `true`: a warm moat handle vs one `ssh` per exec
//	(b) copying in a tree of 5,000 files / 100 MB: moat CopyIn vs `scp -r`
//
// It prints medians and ratios. Run it with:
//
//	go run ./internal/bench/sshbench
//
// It needs sshd, ssh and scp (Debian: openssh-server, openssh-client).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/moatdev/moat/internal/sshdtest"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/sshhost"
)

func main() {
	execs := flag.Int("execs", 200, "sequential execs per side in (a)")
	files := flag.Int("files", 5000, "files in the tree for (b)")
	mb := flag.Int("mb", 100, "total megabytes in the tree for (b)")
	rounds := flag.Int("rounds", 3, "copies per side in (b)")
	flag.Parse()
	if err := run(*execs, *files, *mb, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "sshbench:", err)
		os.Exit(1)
	}
}

func run(execs, files, mb, rounds int) error {
	ctx := context.Background()
	srv, err := sshdtest.New(sshdtest.Options{})
	if err != nil {
		return err
	}
	defer srv.Close()
	tmp, err := os.MkdirTemp("", "sshbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	p := sshhost.New(sshhost.Config{
		Addr: srv.Addr, User: srv.User, IdentityFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile,
		SSH: sshx.Config{SSHConfigFile: "none", AgentSocket: "none", HomeDir: tmp},
	})
	h, err := p.Create(ctx, sandbox.CreateOptions{})
	if err != nil {
		return err
	}
	defer h.Close(ctx)

	sshArgs := []string{
		"-F", "/dev/null", "-i", srv.KeyFile, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + srv.KnownHostsFile, "-o", "StrictHostKeyChecking=yes",
		"-o", "LogLevel=ERROR",
	}
	fmt.Printf("sshd on %s, login user %s\n\n", srv.Addr, srv.User)

	// (a) sequential execs.
	moatExec := func() error {
		r, err := h.Exec(ctx, "true", sandbox.ExecOptions{})
		if err == nil && r.ExitCode != 0 {
			err = fmt.Errorf("true exited %d", r.ExitCode)
		}
		return err
	}
	sshExec := func() error {
		args := append(slices.Clone(sshArgs), "-p", strconv.Itoa(srv.Port), srv.User+"@"+srv.Host, "true")
		out, err := exec.Command("ssh", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ssh: %v: %s", err, out)
		}
		return nil
	}
	moatTimes, err := timeEach(execs, moatExec)
	if err != nil {
		return err
	}
	sshTimes, err := timeEach(execs, sshExec)
	if err != nil {
		return err
	}
	report(fmt.Sprintf("(a) %d sequential execs of `true`, per exec", execs), "moat (warm handle)", moatTimes, "ssh process per exec", sshTimes, 20)

	// (b) copy in a tree.
	tree := filepath.Join(tmp, "tree")
	total, err := makeTree(tree, files, int64(mb)<<20)
	if err != nil {
		return err
	}
	remoteBase := h.WorkDir()
	n := 0
	moatCopy := func() error {
		n++
		return h.CopyIn(ctx, tree, fmt.Sprintf("%s/moat-%d", remoteBase, n))
	}
	scpCopy := func() error {
		n++
		args := append(slices.Clone(sshArgs), "-q", "-r", "-P", strconv.Itoa(srv.Port), tree, fmt.Sprintf("%s@%s:%s/scp-%d", srv.User, srv.Host, remoteBase, n))
		out, err := exec.Command("scp", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("scp: %v: %s", err, out)
		}
		return nil
	}
	cleanup := func() { h.Exec(ctx, "rm -rf moat-* scp-*", sandbox.ExecOptions{}) }
	var moatCopies, scpCopies []time.Duration
	for range rounds { // interleaved, so both sides see the same machine state
		for _, side := range []struct {
			f   func() error
			out *[]time.Duration
		}{{moatCopy, &moatCopies}, {scpCopy, &scpCopies}} {
			cleanup()
			start := time.Now()
			if err := side.f(); err != nil {
				return err
			}
			*side.out = append(*side.out, time.Since(start))
		}
	}
	cleanup()
	report(fmt.Sprintf("(b) copy in %d files, %.0f MiB", files, float64(total)/(1<<20)), "moat CopyIn (tar stream)", moatCopies, "scp -r", scpCopies, 3)
	return nil
}

func timeEach(n int, f func() error) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func report(title, aName string, a []time.Duration, bName string, b []time.Duration, target float64) {
	ma, mb := median(a), median(b)
	ratio := float64(mb) / float64(ma)
	verdict := "met"
	if ratio < target {
		verdict = "NOT met"
	}
	fmt.Println(title)
	fmt.Printf("  %-26s median %10s  (n=%d)\n", aName, ma.Round(time.Microsecond), len(a))
	fmt.Printf("  %-26s median %10s  (n=%d)\n", bName, mb.Round(time.Microsecond), len(b))
	fmt.Printf("  ratio %.1fx faster (target %.0fx: %s)\n\n", ratio, target, verdict)
}

// makeTree writes files random files totalling about size bytes under dir,
// spread over nested directories, most small and a few large, like a repo
// with some assets.
func makeTree(dir string, files int, size int64) (int64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	large := files / 50
	smallEach := int64(8 << 10)
	largeEach := (size - int64(files-large)*smallEach) / int64(large)
	var total int64
	buf := make([]byte, largeEach+smallEach)
	for i := range files {
		n := smallEach/2 + rng.Int64N(smallEach)
		if i < large {
			n = largeEach
		}
		for j := range buf[:n] {
			buf[j] = byte(rng.Uint32())
		}
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%40), fmt.Sprintf("s%d", i%7), fmt.Sprintf("file-%05d.dat", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, err
		}
		if err := os.WriteFile(p, buf[:n], 0o644); err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}
