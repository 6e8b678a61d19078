// Package hostgit runs the real git binary on the host for moat's worktree and
// sync code, the same way every time:
//
//   - LC_ALL=C, so messages can be matched whatever the user's locale is;
//   - GIT_TERMINAL_PROMPT=0, GIT_EDITOR=: and no pager, so git never waits
//     for a person;
//   - variables such as GIT_DIR or GIT_INDEX_FILE inherited from a calling
//     git hook are dropped, so a command works on the directory it is given;
//   - a timeout on every command (its process is killed when it ends);
//   - configuration only through "-c key=value" or repository-local files,
//     never the user's global configuration;
//   - errors that name the command, its directory and the tail of what it
//     printed.
package hostgit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moatdev/moat/internal/shell"
)

// DefaultTimeout bounds one git command when the caller gives no timeout.
const DefaultTimeout = 2 * time.Minute

// tailBytes bounds the output an Error shows.
const tailBytes = 2000

// Cmd is one git invocation.
type Cmd struct {
	Dir     string        // directory git runs in
	Args    []string      // arguments after "git"
	Stdin   io.Reader     // nil: empty input
	Timeout time.Duration // 0: DefaultTimeout
	Env     []string      // extra KEY=value entries
}

// Error is a git command that could not run or exited non-zero.
type Error struct {
	Dir      string
	Args     []string
	ExitCode int // -1 when git did not run to completion
	Stdout   string
	Stderr   string
	Err      error // the underlying error (an *exec.ExitError, a timeout, ...)
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (in %s) failed: ", CommandLine(e.Args), e.Dir)
	switch {
	case errors.Is(e.Err, context.DeadlineExceeded):
		b.WriteString("timed out")
	case errors.Is(e.Err, context.Canceled):
		b.WriteString("cancelled")
	case e.ExitCode >= 0:
		fmt.Fprintf(&b, "exit status %d", e.ExitCode)
	default:
		b.WriteString(e.Err.Error())
	}
	out := strings.TrimSpace(e.Stderr)
	if out == "" {
		out = strings.TrimSpace(e.Stdout)
	}
	if out != "" {
		b.WriteString(": ")
		b.WriteString(Tail(out, tailBytes))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Output returns stderr and stdout together, for matching git's messages.
func (e *Error) Output() string { return e.Stderr + "\n" + e.Stdout }

// CommandLine renders "git" and args as a shell command line.
func CommandLine(args []string) string {
	parts := make([]string, 0, len(args)+1)
	parts = append(parts, "git")
	for _, a := range args {
		parts = append(parts, shell.Quote(a))
	}
	return strings.Join(parts, " ")
}

// Tail returns the last n bytes of s, marked when cut.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// dropped are inherited variables that would point git somewhere else than
// the directory it is given (set, for example, when moat runs from a hook).
var dropped = map[string]bool{
	"GIT_DIR": true, "GIT_WORK_TREE": true, "GIT_INDEX_FILE": true,
	"GIT_OBJECT_DIRECTORY": true, "GIT_ALTERNATE_OBJECT_DIRECTORIES": true,
	"GIT_COMMON_DIR": true, "GIT_NAMESPACE": true, "GIT_PREFIX": true,
	"GIT_QUARANTINE_PATH": true, "GIT_LITERAL_PATHSPECS": true,
	"GIT_GLOB_PATHSPECS": true, "GIT_NOGLOB_PATHSPECS": true, "GIT_ICASE_PATHSPECS": true,
	"LC_ALL": true, "LANGUAGE": true, "GIT_TERMINAL_PROMPT": true,
	"GIT_EDITOR": true, "GIT_PAGER": true, "PAGER": true, "GIT_SEQUENCE_EDITOR": true,
}

var baseEnv = sync.OnceValue(func() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !dropped[strings.ToUpper(k)] {
			env = append(env, kv)
		}
	}
	return append(env,
		"LC_ALL=C", "LANGUAGE=C", "GIT_TERMINAL_PROMPT=0",
		"GIT_EDITOR=:", "GIT_SEQUENCE_EDITOR=:", "GIT_PAGER=cat", "PAGER=cat")
})

// Run runs the command and returns its standard output.
func (c Cmd) Run(ctx context.Context) (string, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = append(append([]string(nil), baseEnv()...), c.Env...)
	cmd.Stdin = c.Stdin
	ownGroup(cmd)
	// A hook or gpg started by git may hold the pipes after git is killed.
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	e := &Error{Dir: c.Dir, Args: c.Args, ExitCode: -1, Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
	if ctxErr := ctx.Err(); ctxErr != nil {
		e.Err = ctxErr
	} else {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			e.ExitCode = exitErr.ExitCode()
		}
	}
	return e.Stdout, e
}

// Run runs git args in dir with the given timeout and returns its standard
// output.
func Run(ctx context.Context, timeout time.Duration, dir string, args ...string) (string, error) {
	return Cmd{Dir: dir, Args: args, Timeout: timeout}.Run(ctx)
}

// Line is Run with the output's surrounding white space trimmed.
func Line(ctx context.Context, timeout time.Duration, dir string, args ...string) (string, error) {
	out, err := Run(ctx, timeout, dir, args...)
	return strings.TrimSpace(out), err
}

// ExitCode returns the exit status carried by err when it is an *Error of
// a git that ran to completion, else -1.
func ExitCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.ExitCode
	}
	return -1
}

// SplitZ splits NUL-terminated records, dropping the empty last one.
func SplitZ(s string) []string {
	s = strings.TrimSuffix(s, "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// Repo describes where a directory inside a repository is.
type Repo struct {
	TopLevel  string // the working tree the directory is in (possibly a linked worktree)
	CommonDir string // the repository's shared git directory (<main>/.git)
	GitDir    string // this working tree's own git directory
	MainRoot  string // the main working tree: the parent of CommonDir
}

// Locate resolves the repository around dir. Bare repositories are refused.
func Locate(ctx context.Context, timeout time.Duration, dir string) (Repo, error) {
	top, err := Line(ctx, timeout, dir, "rev-parse", "--show-toplevel")
	var ge *Error
	if err == nil && top == "" || errors.As(err, &ge) && strings.Contains(ge.Stderr, "must be run in a work tree") {
		return Repo{}, fmt.Errorf("%s is a bare repository or inside a .git directory; moat needs a working tree", dir)
	}
	if err != nil {
		return Repo{}, fmt.Errorf("%s is not inside a git repository: %w", dir, err)
	}
	r := Repo{TopLevel: filepath.Clean(filepath.FromSlash(top))}
	// Run from the top level, a relative --git-common-dir is relative to it.
	// (Not --path-format=absolute: that needs git 2.31.)
	out, err := Run(ctx, timeout, r.TopLevel, "rev-parse", "--absolute-git-dir", "--git-common-dir")
	if err != nil {
		return Repo{}, err
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 2 {
		return Repo{}, fmt.Errorf("git rev-parse in %s: unexpected output %q", r.TopLevel, out)
	}
	r.GitDir = filepath.Clean(filepath.FromSlash(lines[0]))
	r.CommonDir = filepath.FromSlash(lines[1])
	if !filepath.IsAbs(r.CommonDir) {
		r.CommonDir = filepath.Join(r.TopLevel, r.CommonDir)
	}
	r.CommonDir = filepath.Clean(r.CommonDir)
	if filepath.Base(r.CommonDir) != ".git" {
		return Repo{}, fmt.Errorf("the repository at %s keeps its git directory at %s, not in a .git directory of its main working tree; moat supports only that layout", r.TopLevel, r.CommonDir)
	}
	r.MainRoot = filepath.Dir(r.CommonDir)
	return r, nil
}

// MoatDir is the directory moat keeps its files in, inside a repository's
// main working tree. Its working files are hidden from git through
// .git/info/exclude; the rest (config.toml, prompt.md, made by moat init)
// is the user's to commit.
const MoatDir = ".moat"

// excludeLines hide moat's working files from git: worktrees, saved
// patches, logs, and the credentials file.
var excludeLines = []string{
	"/" + MoatDir + "/worktrees/",
	"/" + MoatDir + "/patches/",
	"/" + MoatDir + "/logs/",
	"/" + MoatDir + "/.env",
}

// EnsureExcluded adds the lines hiding moat's working files to the
// repository's info/exclude, those not there yet. The user's .gitignore is
// never touched. Callers that may run concurrently hold Lock.
func EnsureExcluded(commonDir string) error {
	p := filepath.Join(commonDir, "info", "exclude")
	data, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		have[strings.TrimSpace(strings.TrimSuffix(l, "\r"))] = true
	}
	var missing []string
	for _, l := range excludeLines {
		if !have[l] {
			missing = append(missing, l)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	add := "# moat's working files (worktrees, saved patches, logs, credentials)\n" + strings.Join(missing, "\n") + "\n"
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		add = "\n" + add
	}
	_, err = f.WriteString(add)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// Identity is a git author/committer identity.
type Identity struct {
	Name, Email string
	Configured  bool // both came from the user's git configuration
}

// Fallback identity, used when the user has none configured.
const (
	FallbackName  = "moat agent"
	FallbackEmail = "agent@moat.invalid"
)

// ReadIdentity returns user.name and user.email as git sees them in dir
// (repository, global and system configuration), or the fallback identity
// for whichever is missing.
func ReadIdentity(ctx context.Context, timeout time.Duration, dir string) (Identity, error) {
	id := Identity{Configured: true}
	for _, kv := range []struct {
		key  string
		dst  *string
		fall string
	}{{"user.name", &id.Name, FallbackName}, {"user.email", &id.Email, FallbackEmail}} {
		v, err := Line(ctx, timeout, dir, "config", "--get", kv.key)
		if err != nil && ExitCode(err) != 1 { // 1: not set
			return Identity{}, err
		}
		if v == "" {
			v = kv.fall
			id.Configured = false
		}
		*kv.dst = v
	}
	return id, nil
}

// Args returns "-c user.name=... -c user.email=..." for a git command line.
func (id Identity) Args() []string {
	return []string{"-c", "user.name=" + id.Name, "-c", "user.email=" + id.Email}
}
