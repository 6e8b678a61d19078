// Command sshbench measures moat's SSH transport, side by side in one run
// against one real sshd on loopback, against what it replaces and against
// its lower limits:
//
//	(a) sequential execs of `true`: a warm moat handle vs a bare
//	    x/crypto/ssh session (session.Run("true")) on a held connection of
//	    the same kind (the floor: one session, the login shell) vs one `ssh`
//	    process per exec (what the exe.dev proposal did);
//	(b) copying in a tree of 5,000 files / 100 MB: moat CopyIn vs `scp -r`
//	    vs a local `tar -C src -cf - . | tar -C dst -xf -` (the floor: the
//	    same tar work with no network and no SSH).
//
// Rounds of the sides are interleaved, so that each sees the same machine
// state; it prints medians and ratios. Run it with:
//
//	go run ./internal/bench/sshbench
//
// It needs sshd, ssh, scp and tar (Debian: openssh-server, openssh-client).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/moatdev/moat/internal/sshdtest"
	"github.com/moatdev/moat/internal/sshhandle"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/sshhost"
)

func main() {
	execs := flag.Int("execs", 300, "sequential execs per side in (a), moat and bare")
	sshExecs := flag.Int("ssh-execs", 100, "sequential execs of the ssh-process side in (a)")
	execRounds := flag.Int("exec-rounds", 30, "interleaved rounds the execs of (a) are split into")
	files := flag.Int("files", 5000, "files in the tree for (b)")
	mb := flag.Int("mb", 100, "total megabytes in the tree for (b)")
	rounds := flag.Int("rounds", 5, "copies per side in (b), interleaved")
	dest := flag.String("dest", "", "directory on the file system the sandbox and the local copy write to (e.g. /dev/shm, to leave the disk out); \"\" means the login user's home")
	flag.Parse()
	if err := run(*execs, *sshExecs, *execRounds, *files, *mb, *rounds, *dest); err != nil {
		fmt.Fprintln(os.Stderr, "sshbench:", err)
		os.Exit(1)
	}
}

// side is one contender: a name, one operation, and its timings.
type side struct {
	name  string
	n     int // operations in all
	f     func() error
	pre   func() // untimed, before each operation
	times []time.Duration
}

// interleave runs the sides' operations in rounds, one batch of each side
// per round, so that a change of machine state hits every side alike; the
// order of the sides turns each round, so that none always runs first
// (after another side's heavy batch).
func interleave(rounds int, sides ...*side) error {
	for r := range rounds {
		for i := range sides {
			s := sides[(i+r)%len(sides)]
			batch := s.n/rounds + btoi(r < s.n%rounds)
			for range batch {
				if s.pre != nil {
					s.pre()
				}
				start := time.Now()
				if err := s.f(); err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
				s.times = append(s.times, time.Since(start))
			}
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func run(execs, sshExecs, execRounds, files, mb, rounds int, dest string) error {
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

	workBase, local := "", filepath.Join(tmp, "local")
	if dest != "" {
		d, err := os.MkdirTemp(dest, "sshbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		if u, err := user.Lookup(srv.User); err == nil && os.Geteuid() == 0 {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := os.Chown(d, uid, gid); err != nil {
				return err
			}
		}
		workBase, local = d, filepath.Join(d, "local")
	}
	p := sshhost.New(sshhost.Config{
		Addr: srv.Addr, User: srv.User, IdentityFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile,
		WorkDir: workBase,
		SSH:     sshx.Config{SSHConfigFile: "none", AgentSocket: "none", HomeDir: tmp},
	})
	h, err := p.Create(ctx, sandbox.CreateOptions{})
	if err != nil {
		return err
	}
	defer h.Close(ctx)
	bare, err := ssh.Dial("tcp", srv.Addr, srv.ClientConfig())
	if err != nil {
		return err
	}
	defer bare.Close()

	sshArgs := []string{
		"-F", "/dev/null", "-i", srv.KeyFile, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + srv.KnownHostsFile, "-o", "StrictHostKeyChecking=yes",
		"-o", "LogLevel=ERROR",
	}
	shell := "?"
	if out, err := exec.Command("getent", "passwd", srv.User).Output(); err == nil {
		if f := splitColon(string(out)); len(f) >= 7 {
			shell = f[6]
		}
	}
	fmt.Printf("sshd on %s, login user %s (shell %s)\n\n", srv.Addr, srv.User, shell)

	// (a) sequential execs.
	moatExec := &side{name: "moat handle Exec", n: execs, f: func() error {
		r, err := h.Exec(ctx, "true", sandbox.ExecOptions{})
		if err == nil && r.ExitCode != 0 {
			err = fmt.Errorf("true exited %d: %s", r.ExitCode, r.Stderr)
		}
		return err
	}}
	// A new handle for each exec: its first exec, which cannot know the
	// login shell yet, has the login shell exec a wrapper /bin/sh, as every
	// exec does where the login shell is not /bin/sh (bash, zsh, fish).
	sx, err := sshx.New(sshx.Config{
		Host: srv.Addr, User: srv.User, IdentityFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile,
		SSHConfigFile: "none", AgentSocket: "none", HomeDir: tmp,
	})
	if err != nil {
		return err
	}
	defer sx.Close()
	wrapped := &side{name: "moat, wrapper /bin/sh", n: execs, f: func() error {
		r, err := sshhandle.New(sx, h.WorkDir(), nil, nil).Run(ctx, "true", sandbox.ExecOptions{})
		if err == nil && r.ExitCode != 0 {
			err = fmt.Errorf("true exited %d: %s", r.ExitCode, r.Stderr)
		}
		return err
	}}
	bareExec := &side{name: "bare x/crypto/ssh session", n: execs, f: func() error {
		s, err := bare.NewSession()
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Run("true")
	}}
	sshExec := &side{name: "ssh process per exec", n: sshExecs, f: func() error {
		args := append(slices.Clone(sshArgs), "-p", strconv.Itoa(srv.Port), srv.User+"@"+srv.Host, "true")
		out, err := exec.Command("ssh", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ssh: %v: %s", err, out)
		}
		return nil
	}}
	// Warm up both held connections (and the page cache) before timing.
	for range 10 {
		if err := moatExec.f(); err != nil {
			return err
		}
		if err := bareExec.f(); err != nil {
			return err
		}
		if err := wrapped.f(); err != nil {
			return err
		}
	}
	if err := interleave(execRounds, moatExec, bareExec, wrapped, sshExec); err != nil {
		return err
	}
	fmt.Printf("(a) sequential execs of `true`, per exec (%d rounds interleaved)\n", execRounds)
	for _, s := range []*side{moatExec, bareExec, wrapped, sshExec} {
		line(s)
	}
	ratio("moat / bare session", moatExec, bareExec, "≤ 1.3×", func(r float64) bool { return r <= 1.3 })
	ratio("wrapper /bin/sh / bare", wrapped, bareExec, "", nil)
	ratio("ssh process / moat", sshExec, moatExec, "≥ 20×", func(r float64) bool { return r >= 20 })
	fmt.Println()

	// (b) copy in a tree.
	tree := filepath.Join(tmp, "tree")
	total, err := makeTree(tree, files, int64(mb)<<20)
	if err != nil {
		return err
	}
	remoteBase := h.WorkDir()
	n := 0
	cleanup := func() {
		h.Exec(ctx, "rm -rf moat-* scp-*", sandbox.ExecOptions{})
		os.RemoveAll(local)
	}
	moatCopy := &side{name: "moat CopyIn (tar stream)", n: rounds, pre: cleanup, f: func() error {
		n++
		return h.CopyIn(ctx, tree, fmt.Sprintf("%s/moat-%d", remoteBase, n))
	}}
	scpCopy := &side{name: "scp -r", n: rounds, pre: cleanup, f: func() error {
		n++
		args := append(slices.Clone(sshArgs), "-q", "-r", "-P", strconv.Itoa(srv.Port), tree, fmt.Sprintf("%s@%s:%s/scp-%d", srv.User, srv.Host, remoteBase, n))
		out, err := exec.Command("scp", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("scp: %v: %s", err, out)
		}
		return nil
	}}
	tarCopy := &side{name: "local tar | tar (floor)", n: rounds, pre: cleanup, f: func() error {
		if err := os.MkdirAll(local, 0o755); err != nil {
			return err
		}
		out, err := exec.Command("sh", "-c", `tar -C "$1" -cf - . | tar -C "$2" -xf -`, "sh", tree, local).CombinedOutput()
		if err != nil {
			return fmt.Errorf("tar: %v: %s", err, out)
		}
		return nil
	}}
	if err := interleave(rounds, moatCopy, scpCopy, tarCopy); err != nil {
		return err
	}
	cleanup()
	fmt.Printf("(b) copy in %d files, %.0f MiB to %s, per copy (%d rounds interleaved)\n", files, float64(total)/(1<<20), filepath.Dir(remoteBase), rounds)
	for _, s := range []*side{moatCopy, scpCopy, tarCopy} {
		line(s)
	}
	ratio("scp -r / moat", scpCopy, moatCopy, "≥ 3×", func(r float64) bool { return r >= 3 })
	ratio("moat / local tar", moatCopy, tarCopy, "", nil)
	return nil
}

func splitColon(s string) []string {
	var f []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == ':' || s[i] == '\n' {
			f = append(f, s[start:i])
			start = i + 1
		}
	}
	return f
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func line(s *side) {
	fmt.Printf("  %-28s median %11s  (n=%d)\n", s.name, ms(median(s.times)), len(s.times))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

// ratio prints median(a)/median(b), with the target and whether it is met
// when there is one.
func ratio(title string, a, b *side, target string, met func(float64) bool) {
	r := float64(median(a.times)) / float64(median(b.times))
	switch {
	case met == nil:
		fmt.Printf("  %-28s %.2fx\n", title, r)
	case met(r):
		fmt.Printf("  %-28s %.2fx (target %s: met)\n", title, r, target)
	default:
		fmt.Printf("  %-28s %.2fx (target %s: NOT met)\n", title, r, target)
	}
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
