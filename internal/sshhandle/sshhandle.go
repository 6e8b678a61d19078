// Package sshhandle implements sandbox.Handle over an SSH connection, for
// every provider whose sandbox is a remote Unix account: sshhost, exedev.
//
// Every command runs through one fixed wrapper,
//
//	exec /bin/sh -c '<report the PID, read one line of stdin, eval it> # MOAT_SANDBOX_ID=<id>' sh
//
// and the real script (directory, environment, the command) travels as that
// first line of stdin, read by the shell's read builtin and evaluated in
// the same shell, which then runs the command itself. So environment
// values, which may be secrets, never appear on a remote command line
// where `ps` would show them, quoting does not depend on the login shell of
// the remote account, and an exec starts no process but the login shell
// (which execs the wrapper), and the command's own. The session is a
// process group of its own (sshd calls setsid) led by the wrapper, so
// cancelling kills the whole group.
package sshhandle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/moatdev/moat/internal/execout"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
)

// SessionOpener opens SSH sessions; *sshx.Client is one.
type SessionOpener interface {
	NewChannel(ctx context.Context) (*sshx.Channel, error)
}

// Handle is a sandbox.Handle whose commands run over SSH.
type Handle struct {
	conn    SessionOpener
	workDir string
	env     map[string]string
	cleanup func(ctx context.Context, h *Handle) error

	id      string      // marks the processes of this sandbox (MOAT_SANDBOX_ID)
	loginSh atomic.Bool // the login shell is /bin/sh: no wrapper shell needed

	mu        sync.Mutex
	closed    bool
	closeOnce sync.Once
	closeErr  error
	stop      context.Context // cancelled by Close: ends every Exec in flight
	stopAll   context.CancelFunc
	inflight  sync.WaitGroup
}

// New returns a handle whose commands run through conn in workDir with env.
// Close calls cleanup once, after every Exec in flight has ended; cleanup
// may use h.Run, which works after Close. cleanup may be nil.
func New(conn SessionOpener, workDir string, env map[string]string, cleanup func(ctx context.Context, h *Handle) error) *Handle {
	stop, stopAll := context.WithCancel(context.Background())
	id := make([]byte, 8)
	rand.Read(id)
	return &Handle{conn: conn, workDir: workDir, env: env, cleanup: cleanup, stop: stop, stopAll: stopAll, id: hex.EncodeToString(id)}
}

var _ sandbox.Handle = (*Handle)(nil)

// WorkDir implements sandbox.Handle.
func (h *Handle) WorkDir() string { return h.workDir }

// begin registers an operation, or fails when the handle is closed. The
// returned context ends when ctx does or when Close starts.
func (h *Handle) begin(ctx context.Context) (context.Context, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, sandbox.ErrClosed
	}
	h.inflight.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(h.stop, cancel)
	return ctx, func() { stop(); cancel(); h.inflight.Done() }, nil
}

// Exec implements sandbox.Handle.
func (h *Handle) Exec(ctx context.Context, cmd string, opts sandbox.ExecOptions) (sandbox.ExecResult, error) {
	ctx, done, err := h.begin(ctx)
	if err != nil {
		return sandbox.ExecResult{}, err
	}
	defer done()
	res, err := h.Run(ctx, cmd, opts)
	return res, h.closedWhileRunning(err)
}

// closedWhileRunning makes an error caused by Close wrap sandbox.ErrClosed.
func (h *Handle) closedWhileRunning(err error) error {
	if err != nil && h.stop.Err() != nil && !errors.Is(err, sandbox.ErrClosed) {
		return fmt.Errorf("%w: it was closed while the command ran (%v)", sandbox.ErrClosed, err)
	}
	return err
}

// Run is Exec without the closed check, for providers' setup and cleanup.
func (h *Handle) Run(ctx context.Context, cmd string, opts sandbox.ExecOptions) (sandbox.ExecResult, error) {
	stdout, stderr := execout.NewPair(opts)
	code, stray, err := h.run(ctx, cmd, opts, stdout, stderr)
	stdout.Flush()
	stderr.Flush()
	stdout.Stop()
	stderr.Stop()
	return sandbox.ExecResult{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: code, Stray: stray}, err
}

// The remote side of every exec is one POSIX shell, run by the login
// shell with a command line that holds nothing secret:
//
//	exec /bin/sh -c '<loader> # MOAT_SANDBOX_ID=<id>' sh
//
// The loader reports the shell's PID (sshd made it a session leader, so it
// is also the ID of the process group to kill on cancel) and $SHELL, reads
// one line of stdin with the read builtin and evals it. That line, the
// script, sets the directory and the environment, then evals the command
// in the same shell. read takes a pipe byte by byte, so the rest of stdin
// is left for the command. The script is one line: each newline of a
// value or of the command is spelled "$1" (see script). The comment only
// marks the process (see kill).
//
// So one exec costs the login shell, this shell (exec'd: the same
// process) and the command: no subshell, no helper process, and the
// values, which may be secrets, appear on no command line. Once an exec
// has reported that the login shell is /bin/sh itself, the handle sends
// the loader alone, which that login shell runs with the same meaning,
// and an exec costs the login shell and the command.
const (
	pidReport = `echo "moat-pid:$$ $SHELL" >&2; `
	loader    = `IFS= read -r moat_s && eval "$moat_s"`
)

// wrapper returns the command line of the exec session.
func (h *Handle) wrapper() string {
	lean := pidReport + loader + " # MOAT_SANDBOX_ID=" + h.id
	if h.loginSh.Load() {
		return lean
	}
	return "exec /bin/sh -c '" + lean + "' sh" // $0 as the login shell's
}

// IsWrapper reports whether command is the command line of an exec, for
// test servers that look at the script (exedevtest's fault injection).
func IsWrapper(command string) bool {
	return strings.Contains(command, pidReport+loader+" # MOAT_SANDBOX_ID=")
}

// ReadScript reads the script of an exec whose command line IsWrapper
// from the start of its stdin, and returns the bytes it consumed (to be
// passed on to the shell) and the script made readable: newlines and
// quotes spelled as they were, so the command's text appears in it as
// given.
func ReadScript(stdin *bufio.Reader) (raw []byte, script string) {
	for {
		line, err := stdin.ReadString('\n')
		raw = append(raw, line...)
		script += strings.NewReplacer(`'"$1"'`, "\n", `'\''`, "'").Replace(line)
		// A sudo script hands over to a second shell that reads the next line.
		if err != nil || !strings.HasSuffix(line, "; "+loader+"\n") {
			return raw, script
		}
	}
}

// quote is shell.Quote for a word on the one-line script, where "$1" is
// a newline.
func quote(s string) string {
	return strings.ReplaceAll(shell.Quote(s), "\n", `'"$1"'`)
}

// script returns the stdin line(s) the wrapper's loader evaluates.
//
// The script keeps its own values in the positional parameters, which no
// environment variable can change: "$1" is a newline (the third character
// of the default IFS, which a new shell always starts with), and the next
// ones hold what a new shell would set for itself when the environment
// tries to set it (IFS, PPID, PWD; OPTIND is 1), so that the command sees
// what `sh -c` would show it. The command's own parameters are empty, as
// for `sh -c`.
func (h *Handle) script(cmd string, opts sandbox.ExecOptions) (string, error) {
	env, err := shell.MergeEnv(h.env, opts.Env)
	if err != nil {
		return "", err
	}
	dir := opts.Dir
	if dir == "" {
		dir = h.workDir
	} else if !path.IsAbs(dir) {
		dir = path.Join(h.workDir, dir)
	}
	// begin starts a line: the loader's variable is not the command's.
	begin := func(b *strings.Builder, saved []string) {
		fmt.Fprintf(b, "set -- %s; unset moat_s; ", strings.Join(saved, " "))
		// Every process started here inherits the mark, so KillAll finds
		// those that outlive their command (nohup, setsid, daemons).
		fmt.Fprintf(b, "export MOAT_SANDBOX_ID=%s; ", h.id)
	}
	saved := []string{`"${IFS#??}"`}
	var restore strings.Builder
	for _, k := range []string{"IFS", "PPID", "PWD"} {
		if _, ok := env[k]; ok {
			saved = append(saved, `"$`+k+`"`)
			fmt.Fprintf(&restore, "%s=$%d;", k, len(saved))
		}
	}
	if _, ok := env["OPTIND"]; ok {
		restore.WriteString("OPTIND=1;")
	}
	var b strings.Builder
	_, setPWD := env["PWD"]
	if opts.Sudo {
		begin(&b, saved[:1])
		fmt.Fprintf(&b, "cd %s || exit 1; ", quote(dir))
		// sudo filters the environment even with -E (values starting with
		// "() ", PYTHONPATH, a TZ holding / or %), and its command line is
		// public: the root shell reads its own script from the next line
		// of stdin. It keeps the directory.
		fmt.Fprintf(&b, `if [ "$(id -u)" != 0 ]; then exec sudo -n -E /bin/sh -c %s sh; fi; %s`+"\n",
			shell.Quote(loader+" # MOAT_SANDBOX_ID="+h.id), loader)
		begin(&b, saved)
	} else {
		if setPWD { // saved after the cd
			begin(&b, saved[:len(saved)-1])
			fmt.Fprintf(&b, "cd %s || exit 1; ", quote(dir))
			b.WriteString(`set -- "$@" "$PWD"; `)
		} else {
			begin(&b, saved)
			fmt.Fprintf(&b, "cd %s || exit 1; ", quote(dir))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(&b, "export %s=%s; ", k, quote(env[k]))
	}
	// The command runs in this shell: eval parses it as sh -c would.
	fmt.Fprintf(&b, "eval %s %s\n", shell.Quote(restore.String()+"set --;"), quote(cmd))
	return b.String(), nil
}

// run executes cmd and copies its raw output to stdout and stderr. It returns
// the exit code, or an error when the outcome is unknown; and, with
// opts.ExitGrace, what it killed of the command's group.
func (h *Handle) run(ctx context.Context, cmd string, opts sandbox.ExecOptions, stdout, stderr io.Writer) (code int, stray []string, err error) {
	script, err := h.script(cmd, opts)
	if err != nil {
		return -1, nil, err
	}
	if err := ctx.Err(); err != nil {
		return -1, nil, err
	}
	ch, err := h.conn.NewChannel(ctx)
	if err != nil {
		return -1, nil, err
	}
	defer ch.Close()
	pid := &pidCatcher{w: stderr, found: make(chan struct{})}
	if err := ch.Start(h.wrapper()); err != nil {
		return -1, nil, fmt.Errorf("start remote command: %w", err)
	}
	go func() {
		// Write errors mean the command exited or the session ended; the
		// exit status or the lost channel tells which.
		if _, err := io.WriteString(ch, script); err == nil && opts.Stdin != nil {
			io.Copy(ch, opts.Stdin)
		}
		ch.CloseWrite()
	}()
	var outputs sync.WaitGroup
	outputs.Go(func() { io.Copy(stdout, ch.Stdout()) })
	outputs.Go(func() { io.Copy(pid, ch.Stderr()) })
	outputDone := make(chan struct{})
	go func() { outputs.Wait(); close(outputDone) }()
	// drain waits (a bounded time) for the output copies to end after the
	// channel closed, so that nothing is written after run returns.
	drain := func() {
		select {
		case <-outputDone:
		case <-time.After(5 * time.Second):
		}
	}

	// The command ends when its channel does (the output ended), or, with
	// ExitGrace, when its own process exited and then the output ended or
	// the grace passed.
	exited := ch.Exited()
	if opts.ExitGrace <= 0 {
		exited = nil
	}
	var outputEnded <-chan struct{}
	var graceOver <-chan time.Time
	for done := false; !done; {
		select {
		case <-ch.Ended():
			<-outputDone // the channel is closed: its streams are at EOF
			done = true
		case <-exited:
			exited = nil
			t := time.NewTimer(opts.ExitGrace)
			defer t.Stop()
			outputEnded, graceOver = outputDone, t.C
		case <-outputEnded:
			done = true
		case <-graceOver:
			done = true
		case <-ctx.Done():
			// sshd delivers the signal to the session's process group; the
			// kill from a new session covers servers that ignore signal
			// requests. Closing first frees this channel's slot for that new
			// session.
			ch.Signal(ssh.SIGKILL)
			ch.Close()
			stopErr := h.stopAfterLoss(pid, opts.Sudo, cancelWindow)
			drain()
			if stopErr != nil {
				return -1, nil, fmt.Errorf("command cancelled: %w; %w", ctx.Err(), stopErr)
			}
			return -1, nil, fmt.Errorf("command cancelled: %w", ctx.Err())
		}
	}
	select {
	case <-pid.found:
		if pid.shell == "/bin/sh" {
			h.loginSh.Store(true)
		}
	default:
	}
	st, ok := ch.ExitStatus()
	if ok && opts.ExitGrace > 0 {
		// What is left of the group (a child in the background, holding
		// the output or not) would go on changing the sandbox: it goes.
		stray, err = h.stopLeft(pid, opts.Sudo)
		ch.Close()
		drain()
		if err != nil {
			return -1, stray, err
		}
	}
	if ok {
		if st.Signal != "" {
			return 128 + signalNumber(st.Signal), stray, nil
		}
		return st.Code, stray, nil
	}
	// The outcome is unknown, and sshd may leave a command without a
	// terminal running after its connection died: stop it (over a new
	// connection) and wait until it is gone, so that nothing keeps
	// changing the sandbox behind the caller's back, e.g. an agent while
	// its work is synced out. When that cannot be made sure, the error
	// says so (sandbox.ErrStillRunning). (No PID: the wrapper never
	// started, nothing to stop.)
	err = errors.New("the connection to the sandbox ended before the command reported its exit status")
	if ctx.Value(stoppingKey{}) == nil { // not for the stop command's own loss
		select {
		case <-pid.found:
			if stopErr := h.stopAfterLoss(pid, opts.Sudo, lossWindow); stopErr != nil {
				return -1, nil, fmt.Errorf("%w; %w", err, stopErr)
			}
		default:
		}
	}
	return -1, nil, err
}

// stoppingKey marks the context of stopGroup's own command.
type stoppingKey struct{}

// pidCatcher passes stderr through, minus the wrapper's "moat-pid:N SHELL"
// line.
type pidCatcher struct {
	w     io.Writer
	buf   []byte
	pid   int
	shell string // the login shell's $SHELL
	found chan struct{}
}

func (p *pidCatcher) Write(b []byte) (int, error) {
	if p.pid != 0 {
		return p.w.Write(b)
	}
	n := len(b)
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return n, nil
		}
		line := p.buf[:i+1]
		if v, ok := strings.CutPrefix(string(line[:i]), "moat-pid:"); ok {
			v, sh, _ := strings.Cut(v, " ")
			if pid, err := strconv.Atoi(v); err == nil && pid > 1 {
				p.pid, p.shell = pid, sh
				close(p.found)
				rest := p.buf[i+1:]
				p.buf = nil
				if len(rest) > 0 {
					p.w.Write(rest)
				}
				return n, nil
			}
		}
		// Output from the login shell before the wrapper ran.
		p.w.Write(line)
		p.buf = p.buf[i+1:]
	}
}

var signalNumbers = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8,
	"KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
}

// signalNumber maps an SSH signal name to its Linux number (0 if unknown).
func signalNumber(name string) int { return signalNumbers[strings.TrimPrefix(name, "SIG")] }

// sandboxPath makes p absolute, relative paths being under WorkDir.
func (h *Handle) sandboxPath(p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(h.workDir, p)
}

// errCopyEnded ends the host side of a copy in when the sandbox side ended.
var errCopyEnded = errors.New("the sandbox side of the copy ended")

// CopyIn implements sandbox.Handle: the file or tree goes as one tar stream
// over one session and is unpacked by the sandbox's tar.
func (h *Handle) CopyIn(ctx context.Context, hostPath, sandboxPath string) error {
	ctx, done, err := h.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	// A link given as the source means what it points to (links inside a
	// tree stay links).
	src, err := filepath.EvalSymlinks(hostPath)
	if err != nil {
		return fmt.Errorf("copy in: %w", err)
	}
	info, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("copy in: %w", err)
	}
	dst := h.sandboxPath(sandboxPath)
	dir, rootName := dst, "."
	if !info.IsDir() {
		dir, rootName = path.Dir(dst), path.Base(dst)
	}
	pr, pw := io.Pipe()
	tarErr := make(chan error, 1)
	go func() {
		err := WriteTar(pw, src, rootName)
		pw.CloseWithError(err)
		tarErr <- err
	}()
	// cd, not tar -C: GNU tar decodes backslash escapes in -C's argument,
	// so a destination holding a backslash would extract elsewhere.
	cmd := `mkdir -p -- "$MOAT_DST" && cd -- "$MOAT_DST" && exec tar -x -p -o -f -`
	stderr := &execout.Capped{N: 8 << 10}
	code, _, err := h.run(ctx, cmd, sandbox.ExecOptions{Dir: "/", Stdin: pr, Env: map[string]string{"MOAT_DST": dir}}, io.Discard, stderr)
	pr.CloseWithError(errCopyEnded)
	// A host-side failure (an unreadable file) is the real cause, even when
	// tar, seeing a clean end of archive, exited 0; but when the sandbox
	// side never ran (a refused connection), the writer only saw its end.
	if werr := <-tarErr; werr != nil && !(errors.Is(werr, errCopyEnded) && err != nil) {
		return h.closedWhileRunning(fmt.Errorf("copy %s into the sandbox at %s: reading the host files: %w", hostPath, dst, werr))
	}
	if err != nil {
		return h.closedWhileRunning(fmt.Errorf("copy %s into the sandbox at %s: %w", hostPath, dst, err))
	}
	if code != 0 {
		return fmt.Errorf("copy %s into the sandbox at %s: tar exited %d: %s", hostPath, dst, code, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// CopyOut implements sandbox.Handle.
func (h *Handle) CopyOut(ctx context.Context, sandboxPath, hostPath string) error {
	ctx, done, err := h.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	src := h.sandboxPath(sandboxPath)
	if err := os.MkdirAll(filepath.Dir(hostPath), 0o755); err != nil {
		return fmt.Errorf("copy out: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(hostPath), "."+filepath.Base(hostPath)+".moat-*")
	if err != nil {
		return fmt.Errorf("copy out: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	stderr := &execout.Capped{N: 8 << 10}
	w := bufio.NewWriterSize(tmp, 256<<10)
	cmd := `if [ ! -f "$MOAT_SRC" ]; then if [ -e "$MOAT_SRC" ]; then echo "not a regular file" >&2; else echo "no such file" >&2; fi; exit 1; fi; exec cat -- "$MOAT_SRC"`
	code, _, err := h.run(ctx, cmd, sandbox.ExecOptions{Dir: "/", Env: map[string]string{"MOAT_SRC": src}}, w, stderr)
	if err != nil {
		return h.closedWhileRunning(fmt.Errorf("copy %s out of the sandbox: %w", src, err))
	}
	if code != 0 {
		return fmt.Errorf("copy %s out of the sandbox: %s", src, strings.TrimSpace(stderr.String()))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("copy out to %s: %w", hostPath, err)
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(hostPath); err == nil && st.Mode().IsRegular() {
		mode = st.Mode().Perm() // replacing a file keeps its permissions
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("copy out to %s: %w", hostPath, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("copy out to %s: %w", hostPath, err)
	}
	if err := os.Rename(tmp.Name(), hostPath); err != nil {
		return fmt.Errorf("copy out: %w", err)
	}
	return nil
}

// Close implements sandbox.Handle: it ends every Exec in flight (killing the
// remote processes), then runs the provider's cleanup once. Every caller,
// including concurrent ones, returns only when that is done, with its error.
func (h *Handle) Close(ctx context.Context) error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		h.stopAll()
		waited := make(chan struct{})
		go func() { h.inflight.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(20 * time.Second):
		}
		if h.cleanup != nil {
			// The cleanup must run even when ctx is already cancelled.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			h.closeErr = h.cleanup(cctx, h)
		}
	})
	return h.closeErr
}

// WriteTar writes hostPath to w as a tar stream. A directory's entries are
// named below rootName ("." for the tree's own contents); a file becomes one
// entry named rootName. Symbolic links are stored as links, never followed;
// sockets, devices and pipes are skipped.
func WriteTar(w io.Writer, hostPath, rootName string) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	err := filepath.WalkDir(hostPath, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(hostPath, p)
		if err != nil {
			return err
		}
		name := path.Join(rootName, filepath.ToSlash(rel))
		var link string
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case info.Mode().IsRegular(), info.IsDir():
		default:
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		if info.IsDir() && name != "." {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.Format = tar.FormatPAX // long and non-ASCII names
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// expandHome is shell text that makes $MOAT_DIR absolute: a leading "~" and
// relative paths are taken from the login user's $HOME.
const expandHome = `case "$MOAT_DIR" in "~") MOAT_DIR=$HOME ;; "~/"*) MOAT_DIR=$HOME/${MOAT_DIR#"~/"} ;; /*) ;; *) MOAT_DIR=$HOME/$MOAT_DIR ;; esac
`

// KillAll kills every process of the login user that carries this
// handle's mark: what the sandbox's commands left running after they
// ended. Linux hosts only (it reads /proc); elsewhere it does nothing.
// Processes that changed user (sudo) or cleared their environment escape.
func (h *Handle) KillAll(ctx context.Context) error {
	script := `unset MOAT_SANDBOX_ID
[ -d /proc/self ] || exit 0
for d in /proc/[0-9]*; do
	pid=${d#/proc/}
	[ "$pid" = "$$" ] && continue
	if tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qx "MOAT_SANDBOX_ID=$MOAT_KILL_ID"; then
		kill -s KILL "$pid" 2>/dev/null
	fi
done
exit 0`
	res, err := h.Run(ctx, script, sandbox.ExecOptions{Dir: "/", Env: map[string]string{"MOAT_KILL_ID": h.id}})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("exit %d: %s", res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	if err != nil {
		return fmt.Errorf("stopping the sandbox's leftover processes: %w", err)
	}
	return nil
}

// MakeDir makes dir on the remote side ("~" and relative paths are taken
// from $HOME) and returns its absolute physical path. private makes it
// mode 0700.
func MakeDir(ctx context.Context, conn SessionOpener, dir string, private bool) (string, error) {
	script := "set -e\n" + expandHome + `mkdir -p -- "$MOAT_DIR"` + "\n"
	if private {
		script += `chmod 700 -- "$MOAT_DIR"` + "\n"
	}
	script += `cd -- "$MOAT_DIR" && pwd -P`
	res, err := New(conn, "/", nil, nil).Run(ctx, script, sandbox.ExecOptions{Env: map[string]string{"MOAT_DIR": dir}})
	if err != nil {
		return "", fmt.Errorf("make directory %s: %w", dir, err)
	}
	abs := strings.TrimSpace(res.Stdout)
	if res.ExitCode != 0 || !path.IsAbs(abs) {
		return "", fmt.Errorf("make directory %s: exit %d: %s", dir, res.ExitCode, strings.TrimSpace(res.Stderr+" "+res.Stdout))
	}
	return abs, nil
}

// RemoveDir removes dir and everything in it on the remote side, also what
// a command made read-only, and what it made as root when sudo works.
func RemoveDir(ctx context.Context, conn SessionOpener, dir string) error {
	script := expandHome + `[ -e "$MOAT_DIR" ] || exit 0
chmod -R u+w -- "$MOAT_DIR" 2>/dev/null
rm -rf -- "$MOAT_DIR" 2>/dev/null || { sudo -n rm -rf -- "$MOAT_DIR" 2>/dev/null || rm -rf -- "$MOAT_DIR"; }`
	res, err := New(conn, "/", nil, nil).Run(ctx, script, sandbox.ExecOptions{Env: map[string]string{"MOAT_DIR": dir}})
	if err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("remove %s: %s", dir, strings.TrimSpace(res.Stderr))
	}
	return nil
}
