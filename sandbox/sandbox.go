// Package sandbox defines the contract between moat and the places it runs
// agents: a Provider makes sandboxes, a Handle is one live sandbox.
//
// Every provider passes the same conformance suite, sandbox/sandboxtest, so
// code written against these interfaces behaves the same on an exe.dev VM, on
// any SSH host, and in a local temp directory.
//
// What a sandbox can do beyond that contract is a small named interface
// that a Handle, a Provider or an error implements when it can: Named,
// Reachable, OnHost, Keeper (a handle); Describer, Holder, LeftoverFinder
// (a provider); Permanent (an error, see IsPermanent). Callers ask for
// these, never for a provider's own types, and sandboxtest checks each
// one a provider implements.
//
// Each sandbox package also describes itself to programs that let a
// person choose it (the moat CLI) as a Kind: its spec, help, how it is
// opened, its doctor checks. A Registry lists the kinds a program offers.
package sandbox

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Provider makes sandboxes of one kind.
type Provider interface {
	// Name is a short lower-case identifier such as "local", "sshhost" or
	// "exedev", used in logs and error messages.
	Name() string

	// Create makes a fresh sandbox and returns a live handle to it. The
	// sandbox is ready for Exec when Create returns. If Create fails, nothing
	// it made is left behind. The caller must Close the handle.
	Create(ctx context.Context, opts CreateOptions) (Handle, error)
}

// Describer is implemented by a Provider whose sandboxes' containment
// depends on its configuration or on the host (a local sandbox that shares
// the host's network, say), so that the user sees it where the sandbox is
// named, such as a run's status line.
type Describer interface {
	// Describe returns one short line that starts with Name, such as
	// "local, bwrap, network host (shares this computer's network)".
	Describe() string
}

// Describe returns p's Describe when it is a Describer, else its Name.
func Describe(p Provider) string {
	if d, ok := p.(Describer); ok {
		return d.Describe()
	}
	return p.Name()
}

// CreateOptions configure one sandbox.
type CreateOptions struct {
	// Env is set for every command run in the sandbox. ExecOptions.Env
	// entries with the same key win. Values may be secrets: providers never
	// put them on a command line, in a log or in an error message.
	Env map[string]string

	// Labels are stored with the sandbox's Record, so that a leftover of
	// a killed run says where it came from (LabelRepo, LabelRun). They
	// are not secret, and not part of the sandbox's environment.
	Labels map[string]string
}

// Handle is one live sandbox.
//
// All methods are safe for concurrent use. Paths inside the sandbox
// ("sandbox paths") that are relative are taken relative to WorkDir.
type Handle interface {
	// WorkDir is the absolute sandbox path of the directory where the
	// repository lives and where commands run by default. It exists when
	// Create returns.
	WorkDir() string

	// Exec runs cmd with "sh -c" semantics and waits for it to finish.
	//
	// A command that runs and exits non-zero is a result, not an error:
	// ExecResult.ExitCode carries the status (128+N when killed by signal N).
	// A non-nil error means the command could not be run or its outcome is
	// unknown: the transport failed, the handle is closed (ErrClosed), an
	// option is invalid, or ctx ended. When ctx ends, the command and every
	// process in its process group are killed in the sandbox, and Exec
	// returns an error that wraps ctx.Err().
	Exec(ctx context.Context, cmd string, opts ExecOptions) (ExecResult, error)

	// CopyIn copies the host file or directory at hostPath to sandboxPath.
	// A file arrives with its bytes and permission bits; a directory's tree
	// arrives with modes, empty directories and symbolic links (copied as
	// links, never followed). Missing parent directories are made. Existing
	// files at the destination are replaced; other existing entries in a
	// destination directory are kept.
	CopyIn(ctx context.Context, hostPath, sandboxPath string) error

	// CopyOut copies the regular file at sandboxPath to hostPath, byte for
	// byte. hostPath is written atomically: on error it is left as it was.
	CopyOut(ctx context.Context, sandboxPath, hostPath string) error

	// Close destroys the sandbox and releases everything it holds. It is
	// idempotent: later calls return nil. After Close, Exec, CopyIn and
	// CopyOut return an error that wraps ErrClosed. Close does its work even
	// when ctx is already cancelled, within a bounded time.
	Close(ctx context.Context) error
}

// ExecOptions configure one Exec.
type ExecOptions struct {
	// Dir is the directory the command starts in; relative paths are taken
	// from WorkDir. Empty means WorkDir. A Dir that cannot be entered is
	// reported like a shell would: exit code 1 and a message on stderr.
	Dir string

	// Env adds environment variables for this command. Keys must be valid
	// shell names ([A-Za-z_][A-Za-z0-9_]*). Values may hold any bytes but
	// NUL; they may be secrets and are treated as such.
	Env map[string]string

	// Stdin, when set, is copied to the command's standard input, which is
	// closed when Stdin returns EOF. When nil the command reads EOF. As with
	// os/exec, a Read from Stdin in progress when the command ends may
	// complete after Exec returns; that data is dropped. Pass a reader that
	// ends (a file, a buffer) rather than a terminal you still read from.
	Stdin io.Reader

	// OnLine, when set, is called with each line the command writes to
	// stdout, without its line ending, as soon as the line is complete
	// (while the command still runs). A final line without a newline is
	// delivered when the command ends. Lines longer than MaxLineBytes are
	// delivered in pieces of that size.
	OnLine func(line string)

	// OnStderrLine is OnLine for stderr.
	OnStderrLine func(line string)

	// Stdout and Stderr, when set, receive the command's output byte for
	// byte as it arrives (no line splitting, CR and binary data kept). After
	// a write to one fails, it gets no more.
	//
	// OnLine, OnStderrLine, Stdout and Stderr are never called
	// concurrently with each other, and never after Exec returns.
	Stdout, Stderr io.Writer

	// Sudo runs the command as root inside the sandbox.
	Sudo bool

	// ExitGrace, when positive, makes the exit of the command's own
	// process the end of the command, as for an agent whose background
	// children must not keep its iteration alive. Once that process has
	// exited, Exec waits at most ExitGrace for the output to end, then
	// kills what is left of the command's process group in the sandbox
	// and returns the command's own exit status, with
	// ExecResult.Stray naming what it killed. Zero means the command
	// ends when its output does, as a shell pipeline would see it
	// (a background child holding stdout keeps it running).
	ExitGrace time.Duration
}

// ExecResult is what a command left behind.
type ExecResult struct {
	// Stdout and Stderr hold the last TailBytes bytes the command wrote to
	// each stream. Longer output is cut at the front, so memory stays
	// bounded however much a command prints; use OnLine to see everything.
	Stdout, Stderr string

	// ExitCode is the command's exit status; 128+N when killed by signal N.
	ExitCode int

	// Stray describes, one entry each (PID and command line, cut
	// short), the processes of the command's group that were still
	// running when the command's own process had exited and
	// ExecOptions.ExitGrace had passed, and were killed.
	Stray []string
}

const (
	// TailBytes bounds ExecResult.Stdout and ExecResult.Stderr.
	TailBytes = 1 << 20
	// MaxLineBytes bounds one OnLine call.
	MaxLineBytes = 4 << 20
)

// ErrClosed is wrapped by errors from a Handle that has been closed.
var ErrClosed = errors.New("sandbox is closed")

// ErrStillRunning is wrapped by an Exec error when the command's outcome
// is unknown (the connection to the sandbox was lost, or ctx ended) and
// the command's processes could not be confirmed stopped: they may still
// be running and changing the sandbox. A caller that was about to read
// the sandbox's files (to bring an agent's work out, say) should treat
// the sandbox as lost rather than read a tree that may still change.
var ErrStillRunning = errors.New("the command's processes may still be running in the sandbox")

// ShortCommand returns the start of a command line for ExecResult.Stray:
// its first line, at most 80 bytes (cut at a UTF-8 boundary), with "…"
// where something was cut.
func ShortCommand(args string) string {
	args = strings.TrimSpace(args)
	cut := false
	if i := strings.IndexByte(args, '\n'); i >= 0 {
		args, cut = strings.TrimSpace(args[:i]), true
	}
	if len(args) > 80 {
		n := 80
		for n > 0 && !utf8.RuneStart(args[n]) {
			n--
		}
		args, cut = args[:n], true
	}
	if cut {
		args += "…"
	}
	return args
}
