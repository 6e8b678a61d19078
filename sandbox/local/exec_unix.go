//go:build unix

package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moatdev/moat/internal/execout"
	"github.com/moatdev/moat/internal/procgroup"
	"github.com/moatdev/moat/internal/procstat"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/sandbox"
)

func platformSupported() error { return nil }

// openNonblock keeps CopyOut from blocking on a FIFO planted in the sandbox.
const openNonblock = syscall.O_NONBLOCK

const (
	// ioGrace bounds the wait for a command's output to end after the
	// command and its process group are gone (a process that left the group
	// may still hold the pipes).
	ioGrace = 2 * time.Second
	// stdinGrace bounds the wait, after the command ended, for a copy from
	// ExecOptions.Stdin that is blocked in Read (a reader that never ends).
	// The copy is abandoned after it: its next Write fails.
	stdinGrace = 250 * time.Millisecond
	// sudoGrace is how long a "sudo -n" command gets to end after SIGTERM,
	// which sudo relays, before its group is sent SIGKILL.
	sudoGrace = time.Second
)

// The first shell enters the directory like a shell would (exit 1 and a
// message on stderr when it cannot) and then becomes "sh -c cmd".
const (
	enterScript = `cd -- "$1" || exit 1; exec /bin/sh -c -- "$2"`
	// sudoScript also reads the environment from a file, so that values
	// never appear on sudo's command line.
	sudoScript = `. "$1" || exit 1; rm -f -- "$1"; cd -- "$2" || exit 1; exec /bin/sh -c -- "$3"`
)

// proc is one running command: the leader of its own session and process
// group.
type proc struct {
	pid    int
	sudo   bool          // started through "sudo -n": needs SIGTERM first
	exited chan struct{} // closed when the leader has been waited for
	killed atomic.Bool
}

// kill kills the command's whole process group.
func (p *proc) kill() {
	p.killed.Store(true)
	if !p.sudo {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		return
	}
	// We may not signal root processes started by sudo; sudo relays
	// SIGTERM to them. SIGKILL follows for whatever we may kill.
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	go func() {
		select {
		case <-p.exited:
		case <-time.After(sudoGrace):
			_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		}
	}()
}

func (h *handle) Exec(ctx context.Context, cmd string, opts sandbox.ExecOptions) (sandbox.ExecResult, error) {
	if err := h.begin("exec"); err != nil {
		return sandbox.ExecResult{}, err
	}
	defer h.ops.Done()
	if err := ctx.Err(); err != nil {
		return sandbox.ExecResult{}, fmt.Errorf("local: exec: %w", err)
	}
	env, err := shell.MergeEnv(h.env, opts.Env)
	if err != nil {
		return sandbox.ExecResult{}, fmt.Errorf("local: exec: %w", err)
	}
	dir := h.work
	if opts.Dir != "" {
		if filepath.IsAbs(opts.Dir) {
			dir = filepath.Clean(opts.Dir)
		} else {
			dir = filepath.Join(h.work, opts.Dir)
		}
	}
	env = h.baseEnv(env, opts.Sudo)

	viaSudo := opts.Sudo && h.bwrap == "" && os.Geteuid() != 0
	var argv []string
	var nw *netPlan
	switch {
	case h.bwrap != "":
		if nw, err = newNetPlan(h.p.network(), h.net); err != nil {
			return sandbox.ExecResult{}, fmt.Errorf("local: exec: network: %w", err)
		}
		// nsenter (or nothing), for a network of the sandbox's own, then bwrap.
		argv = append(nw.prefix, h.bwrap)
		argv = append(argv, bwrapArgs(opts.Sudo)...)
		argv = append(argv, hostMounts()...)
		argv = append(argv, nw.args...) // after /etc: may cover resolv.conf
		argv = append(argv,
			"--dev", "/dev",
			"--proc", "/proc",
			"--bind", h.tmp, "/tmp",
			"--bind", h.dir, h.dir,
			"--remount-ro", "/",
			"--chdir", h.dir,
			"--", "/bin/sh", "-c", enterScript, "sh", dir, cmd)
	case viaSudo:
		envFile, err := h.writeEnvFile(env)
		if err != nil {
			return sandbox.ExecResult{}, fmt.Errorf("local: exec: %w", err)
		}
		defer os.Remove(envFile)
		argv = []string{"sudo", "-n", "/bin/sh", "-c", sudoScript, "sh", envFile, dir, cmd}
	default:
		argv = []string{"/bin/sh", "-c", enterScript, "sh", dir, cmd}
	}
	return h.run(ctx, argv, env, viaSudo, nw, opts)
}

// baseEnv returns the full environment of a command: a minimal base from the
// host, overlaid with the sandbox's and the command's variables.
func (h *handle) baseEnv(over map[string]string, sudo bool) map[string]string {
	env := map[string]string{
		"PATH":   hostPath(),
		"HOME":   h.home,
		"TMPDIR": h.tmp,
		"TERM":   "dumb",
		"USER":   currentUser(),
	}
	if sudo {
		env["USER"] = "root"
	}
	for _, k := range []string{"LANG", "LC_ALL"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	maps.Copy(env, over)
	return env
}

var currentUser = sync.OnceValue(func() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
})

// writeEnvFile writes env as shell exports to a private file in the sandbox
// directory, for sudo, which would otherwise reset the environment.
func (h *handle) writeEnvFile(env map[string]string) (string, error) {
	f, err := os.CreateTemp(h.dir, ".moat-env-")
	if err != nil {
		return "", err
	}
	_, err = io.WriteString(f, shell.Exports(env))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// run starts argv and waits for it, its output and (boundedly) its stdin.
// nw, when not nil, gives a bwrap command its network; run closes it.
func (h *handle) run(ctx context.Context, argv []string, env map[string]string, viaSudo bool, nw *netPlan, opts sandbox.ExecOptions) (sandbox.ExecResult, error) {
	var res sandbox.ExecResult
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = h.dir
	for _, k := range slices.Sorted(maps.Keys(env)) {
		c.Env = append(c.Env, k+"="+env[k])
	}
	// A new session: a new process group to kill as a whole, and no
	// controlling terminal. (bwrap's --die-with-parent is tied to the OS
	// thread that forks it; the Go runtime only ends a thread when a
	// goroutine exits while locked to it with runtime.LockOSThread.)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if nw != nil {
		defer nw.close()
	}

	// Our own pipes (not exec's copying goroutines): Wait returns when the
	// command exits, and we decide how long to wait for its output.
	outR, outW, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("local: exec: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return res, fmt.Errorf("local: exec: %w", err)
	}
	c.Stdout, c.Stderr = outW, errW
	var inR, inW *os.File
	if f, ok := opts.Stdin.(*os.File); ok && f != nil {
		// A file (os.Stdin, a pipe) is handed to the command as it is:
		// nothing to copy, and nothing reads it after Exec returns.
		c.Stdin = f
	} else if opts.Stdin != nil {
		if inR, inW, err = os.Pipe(); err != nil {
			outR.Close()
			outW.Close()
			errR.Close()
			errW.Close()
			return res, fmt.Errorf("local: exec: %w", err)
		}
		c.Stdin = inR
	}
	if nw != nil {
		c.ExtraFiles = nw.files
	}
	var startErr error
	if nw != nil {
		startErr = nw.start(c)
		nw.close()
	} else {
		startErr = c.Start()
	}
	outW.Close()
	errW.Close()
	if inR != nil {
		inR.Close()
	}
	if startErr != nil {
		outR.Close()
		errR.Close()
		if inW != nil {
			inW.Close()
		}
		return res, fmt.Errorf("local: exec: starting %s: %w", argv[0], startErr)
	}

	pr := &proc{pid: c.Process.Pid, sudo: viaSudo, exited: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		pr.kill()
	} else {
		h.procs[pr] = struct{}{}
	}
	h.mu.Unlock()

	stdout, stderr := execout.NewPair(opts)
	var readers sync.WaitGroup
	readers.Go(func() { _, _ = io.Copy(stdout, outR) })
	readers.Go(func() { _, _ = io.Copy(stderr, errR) })

	var stdinDone chan struct{}
	var closeStdin func()
	if inW != nil {
		stdinDone = make(chan struct{})
		closeStdin = sync.OnceFunc(func() { inW.Close() })
		go func() {
			defer close(stdinDone)
			// A command that exits without reading makes this fail with
			// EPIPE (or "file already closed"): not an error of Exec.
			_, _ = io.Copy(inW, opts.Stdin)
			closeStdin()
		}()
	}

	exited := make(chan func() error, 1)
	go func() { exited <- procgroup.WaitExited(c) }()
	var reap func() error
	select {
	case reap = <-exited:
	case <-ctx.Done():
		pr.kill()
		reap = <-exited
	}
	close(pr.exited)
	h.mu.Lock()
	delete(h.procs, pr)
	h.mu.Unlock()
	outputDone := make(chan struct{})
	go func() { readers.Wait(); close(outputDone) }()
	// With ExitGrace, the output still in flight gets that long to
	// arrive before the group is killed (under bwrap, the pid namespace
	// has mostly died with the command already).
	waitOut := ioGrace
	if opts.ExitGrace > 0 {
		waitOut = opts.ExitGrace
		t := time.NewTimer(opts.ExitGrace)
		select {
		case <-outputDone:
		case <-t.C:
		}
		t.Stop()
		res.Stray = groupMembers(pr.pid)
	}
	// Whatever the command left running in its group ends with it (as it
	// does under bwrap, where the pid namespace dies with the command).
	// On Linux the leader is not reaped yet, so its pid (the group's id)
	// cannot have been reused by another process, in this program or any
	// other, which this SIGKILL would hit.
	if !viaSudo {
		_ = syscall.Kill(-pr.pid, syscall.SIGKILL)
	}
	werr := reap()

	// Output: normally both pipes are already at EOF. If a process that
	// left the group still holds them, stop waiting after ioGrace (or
	// ExitGrace); closing our ends unblocks the readers, so no callback
	// runs after we return.
	grace := time.NewTimer(waitOut)
	defer grace.Stop()
	select {
	case <-outputDone:
	case <-grace.C:
		outR.Close()
		errR.Close()
		<-outputDone
	}
	outR.Close()
	errR.Close()
	stdout.Flush()
	stderr.Flush()
	if closeStdin != nil {
		closeStdin()
		select {
		case <-stdinDone:
		case <-time.After(stdinGrace): // opts.Stdin blocks in Read; leave it behind
		}
	}

	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	if c.ProcessState == nil {
		return res, fmt.Errorf("local: exec: waiting: %w", werr)
	}
	res.ExitCode = exitCode(c.ProcessState)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("local: exec: %w", err)
	}
	if pr.killed.Load() && h.isClosed() {
		return res, fmt.Errorf("local: exec: command killed by Close: %w", sandbox.ErrClosed)
	}
	var exitErr *exec.ExitError
	if werr != nil && !errors.As(werr, &exitErr) {
		return res, fmt.Errorf("local: exec: waiting: %w", werr)
	}
	return res, nil
}

// exitCode is the exit status, or 128+N for a command killed by signal N.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// groupMembers describes ("PID command line", cut short) the live
// processes of process group pgid other than its leader, where /proc
// tells (Linux); elsewhere it returns nil.
func groupMembers(pgid int) []string {
	all, err := procstat.All()
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range all {
		if p.PGRP != pgid || p.PID == pgid || !p.Live() {
			continue
		}
		args, _ := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cmdline")
		line := strings.TrimSpace(strings.ReplaceAll(string(args), "\x00", " "))
		if line == "" {
			continue // already ending
		}
		out = append(out, strconv.Itoa(p.PID)+" "+sandbox.ShortCommand(line))
	}
	return out
}
