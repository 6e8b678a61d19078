// Package hostgit runs the real git binary on the host for moat's worktree and
// sync code, the same way every time:
//
//   - LC_ALL=C, so messages can be matched whatever the user's locale is;
//   - GIT_TERMINAL_PROMPT=0, GIT_EDITOR=: and no pager, so git never waits
//     for a person;
//   - variables such as GIT_DIR or GIT_INDEX_FILE inherited from a calling
//     git hook are dropped, so a command works on the directory it is given;
//   - a timeout on every command (its process is killed when it ends);
//   - git reads the system, global and repository configuration as usual
//     (the user's identity, excludes, git-lfs and credential set-up come
//     from there); moat itself writes configuration only through
//     "-c key=value" and repository-local files, never the global or
//     system files;
//   - no program that the repository chooses is run (below);
//   - errors that name the command, its directory and the tail of what it
//     printed.
//
// # Programs the repository chooses
//
// A repository's own configuration (.git/config, config.worktree and the
// files they include) can make git run programs: hooks, core.fsmonitor,
// filter and merge drivers, diff drivers, ssh and credential helpers. That
// configuration is not necessarily the user's: it may come with a
// repository they downloaded, or be written by anything that could write
// into .git. Host git runs in the user's account, outside any sandbox, so
// moat's git commands run none of them:
//
//   - every command gets -c core.hooksPath=/dev/null (no hook file runs,
//     from .git/hooks or any hooks directory, the user's global one
//     included: moat's merges and commits run no post-merge or commit-msg
//     hook), -c core.fsmonitor=false, -c commit.gpgSign=false and
//     -c tag.gpgSign=false (moat does not sign the agent's work with the
//     user's key), -c log.showSignature=false, -c protocol.ext.allow=never
//     and --no-pager; GIT_EDITOR, GIT_SEQUENCE_EDITOR and GIT_PAGER
//     override the editors and pagers, and git gets no terminal, which a
//     pager needs;
//   - settings that name a program (programKeys: filter.<x>.clean, smudge
//     and process, merge.<x>.driver, diff.external, diff.<x>.command and
//     textconv, core.sshCommand, core.askPass, core.alternateRefsCommand,
//     core.gitProxy, credential helpers, gpg programs, hook.<x>.command,
//     git-lfs custom transfer agents and extensions) are honoured only from
//     the system and global configuration, the user's own, or from the
//     environment. A value from the repository's configuration is
//     overridden on the command line with the global one, or with a
//     harmless value when there is none: an empty filter (content passes
//     unchanged, and filter.<x>.required is switched off), "git
//     merge-file" as merge driver (git's own text merge), "true" as
//     external diff, "cat" as textconv, plain "ssh", no credential helper
//     (the list is reset and the global helpers put back), no askpass,
//     GIT_PROXY_COMMAND empty. The one exception are the exact filter.lfs
//     commands "git lfs install --local" writes, which run the git-lfs the
//     user installed.
//
// So git-lfs installed globally keeps working (checkouts and merges are
// smudged, status is clean), while a filter or merge driver that only the
// repository defines is not run. Finding where a setting comes from costs
// one "git config --show-scope --get-regexp" per command, and only when the
// repository's config files mention one of those settings' names at all
// (a plain read of one or two small files, see mayNamePrograms); most
// repositories never pay it. Without --show-scope (git before 2.26), every
// such setting is treated as the repository's.
//
// Two settings cannot be taken back on the command line, so they make
// every command fail rather than run the program: one whose subsection has
// a "=" in it ("-c" splits there), and remote.<x>.uploadpack in a partial
// clone (git uses the first value, the repository's, when it fetches
// missing objects). Moat's commands never fetch or push otherwise, so
// remote.<x>.uploadpack and receivepack are not looked at elsewhere.
package hostgit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
// GIT_CONFIG would make "git config" read only that file, hiding the
// repository's settings from the look-up of programs it names.
var dropped = map[string]bool{
	"GIT_DIR": true, "GIT_WORK_TREE": true, "GIT_INDEX_FILE": true,
	"GIT_OBJECT_DIRECTORY": true, "GIT_ALTERNATE_OBJECT_DIRECTORIES": true,
	"GIT_COMMON_DIR": true, "GIT_NAMESPACE": true, "GIT_PREFIX": true,
	"GIT_QUARANTINE_PATH": true, "GIT_LITERAL_PATHSPECS": true,
	"GIT_GLOB_PATHSPECS": true, "GIT_NOGLOB_PATHSPECS": true, "GIT_ICASE_PATHSPECS": true,
	"LC_ALL": true, "LANGUAGE": true, "GIT_TERMINAL_PROMPT": true,
	"GIT_EDITOR": true, "GIT_PAGER": true, "PAGER": true, "GIT_SEQUENCE_EDITOR": true,
	"GIT_CONFIG": true,
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

// safeArgs come first on every git command line: no hooks, no fsmonitor,
// no signing, no pager, no ext:: transport (see the package comment).
var safeArgs = []string{
	"--no-pager",
	"-c", "core.hooksPath=/dev/null",
	"-c", "core.fsmonitor=false",
	"-c", "commit.gpgSign=false",
	"-c", "tag.gpgSign=false",
	"-c", "log.showSignature=false",
	"-c", "protocol.ext.allow=never",
}

// Run runs the command and returns its standard output.
func (c Cmd) Run(ctx context.Context) (string, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// ran: the command itself ran (not only the configuration look-up),
	// so its exit status is the command's.
	fail := func(stdout, stderr string, err error, ran bool) (string, error) {
		e := &Error{Dir: c.Dir, Args: c.Args, ExitCode: -1, Stdout: stdout, Stderr: stderr, Err: err}
		if ctxErr := ctx.Err(); ctxErr != nil {
			e.Err = ctxErr
		} else {
			var exitErr *exec.ExitError
			if ran && errors.As(err, &exitErr) {
				e.ExitCode = exitErr.ExitCode()
			}
		}
		return e.Stdout, e
	}
	guardArgs, guardEnv, guardOut, err := c.guard(ctx)
	if err != nil {
		return fail("", guardOut, err, false)
	}
	args := make([]string, 0, len(safeArgs)+len(guardArgs)+len(c.Args))
	args = append(append(append(args, safeArgs...), guardArgs...), c.Args...)
	stdout, stderr, err := runGit(ctx, c.Dir, args, append(guardEnv, c.Env...), c.Stdin)
	if err != nil {
		return fail(stdout, stderr, err, true)
	}
	return stdout, nil
}

// runGit runs git with exactly these arguments and extra environment.
func runGit(ctx context.Context, dir string, args, env []string, stdin io.Reader) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), baseEnv()...), env...)
	cmd.Stdin = stdin
	ownGroup(cmd)
	// A hook or gpg started by git may hold the pipes after git is killed.
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// programKeys matches, in the canonical form "git config --get-regexp"
// compares (section and name in lower case), the settings that name a
// program git may run for moat's commands, and those that make a
// repository a partial clone (which fetches missing objects on its own).
// Settings that only commands moat never runs use (alias.*, difftool,
// mergetool, sendemail, trailer.<x>.cmd, web.browser, remote.<x>.receivepack
// for pushes, ...) are not listed.
const programKeys = `^(filter\..+\.(clean|smudge|process)` +
	`|merge\..+\.driver` +
	`|diff\.external|diff\..+\.(command|textconv)` +
	`|core\.(sshcommand|askpass|alternaterefscommand|gitproxy)` +
	`|credential\.(.+\.)?helper` +
	`|remote\..+\.uploadpack|remote\..+\.promisor|extensions\.partialclone` +
	`|gpg\.((openpgp|x509|ssh)\.)?program` +
	`|hook\..+\.command` +
	`|lfs\.customtransfer\..+\.path|lfs\.extension\..+\.(clean|smudge))$`

// programWords are words at least one of which a config file must contain
// (in any case) to set one of programKeys, or to include another file
// ("path"). A file with none of them needs no look-up.
var programWords = []string{"clean", "smudge", "process", "driver", "external", "command",
	"textconv", "askpass", "gitproxy", "helper", "uploadpack", "program", "path"}

// mergeFileDriver is git's own text merge as a merge driver.
const mergeFileDriver = "git merge-file --marker-size=%L %A %O %B"

// lfsLocal are the filter commands "git lfs install --local" writes into a
// repository's config: they run the git-lfs on PATH, which the user
// installed, so they are left alone.
var lfsLocal = map[string]string{
	"filter.lfs.clean":   "git-lfs clean -- %f",
	"filter.lfs.smudge":  "git-lfs smudge -- %f",
	"filter.lfs.process": "git-lfs filter-process",
}

// harmless returns the value that replaces a repository-chosen program for
// key (canonical form), when nothing trusted sets it.
func harmless(key string) string {
	section, _, _ := strings.Cut(key, ".")
	name := key[strings.LastIndexByte(key, '.')+1:]
	switch {
	case section == "merge": // merge.<x>.driver
		return mergeFileDriver
	case section == "diff" && name == "textconv":
		return "cat"
	case section == "diff": // diff.external, diff.<x>.command
		return "true"
	case key == "core.sshcommand":
		return "ssh"
	case key == "core.alternaterefscommand", section == "hook":
		return "true"
	case key == "gpg.x509.program":
		return "gpgsm"
	case key == "gpg.ssh.program":
		return "ssh-keygen"
	case section == "gpg":
		return "gpg"
	}
	return "" // filters, lfs, core.askpass: nothing runs
}

// configEntry is one setting as "git config --show-scope" lists it.
type configEntry struct {
	scope, key, value string
}

// trusted reports whether a setting from scope is the user's own: the
// system and global files and the command line (GIT_CONFIG_PARAMETERS).
// "local", "worktree" and an unknown scope are the repository's.
func trusted(scope string) bool {
	return scope == "system" || scope == "global" || scope == "command"
}

// guard returns the extra arguments and environment that keep git from
// running programs the repository's configuration names (see the package
// comment), and on failure what the look-up printed.
func (c Cmd) guard(ctx context.Context) (args, env []string, stderr string, err error) {
	selectors, custom := repoSelectors(c.Args)
	if !custom && !envSelectsRepo(c.Env) && !mayNamePrograms(c.Dir) {
		return nil, nil, "", nil
	}
	lookups.Add(1)
	list := append(append(append([]string(nil), safeArgs...), selectors...), "config", "--show-scope", "-z", "--get-regexp", programKeys)
	out, errOut, err := runGit(ctx, c.Dir, list, c.Env, nil)
	scoped := true
	if err != nil && strings.Contains(errOut, "show-scope") { // git < 2.26
		scoped = false
		list = append(list[:len(list)-4], "-z", "--get-regexp", programKeys)
		out, errOut, err = runGit(ctx, c.Dir, list, c.Env, nil)
	}
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == 1 && ctx.Err() == nil) { // 1: no such setting
		return nil, nil, errOut, fmt.Errorf("reading the repository's configuration (git config --get-regexp): %w", err)
	}
	entries := parseConfigList(out, scoped)
	args, env, err = neutralise(entries)
	return args, env, "", err
}

// lookups counts configuration look-ups, for tests.
var lookups atomic.Int64

// parseConfigList parses "git config [--show-scope] -z --get-regexp"
// output; without scopes every entry gets the unknown scope "".
func parseConfigList(out string, scoped bool) []configEntry {
	recs := SplitZ(out)
	var entries []configEntry
	for i := 0; i < len(recs); i++ {
		var e configEntry
		if scoped {
			if i+1 >= len(recs) {
				break
			}
			e.scope = recs[i]
			i++
		}
		e.key, e.value, _ = strings.Cut(recs[i], "\n")
		entries = append(entries, e)
	}
	return entries
}

// neutralise turns the settings that name programs into the command-line
// overrides described in the package comment.
func neutralise(entries []configEntry) (args, env []string, err error) {
	last := map[string]configEntry{}   // the value git uses: the last one
	lastTrusted := map[string]string{} // the last trusted value
	var keys []string                  // in first-seen order
	hostileHelpers, hostileProxy := false, false
	var uploadPack string // a remote's upload-pack set by the repository
	partial := false      // the repository fetches missing objects by itself
	for _, e := range entries {
		if _, seen := last[e.key]; !seen {
			keys = append(keys, e.key)
		}
		last[e.key] = e
		if trusted(e.scope) {
			lastTrusted[e.key] = e.value
		}
		if !trusted(e.scope) && isHelper(e.key) {
			hostileHelpers = true
		}
		if !trusted(e.scope) && e.key == "core.gitproxy" {
			hostileProxy = true
		}
		if !trusted(e.scope) && strings.HasPrefix(e.key, "remote.") && strings.HasSuffix(e.key, ".uploadpack") {
			uploadPack = e.key
		}
		if e.key == "extensions.partialclone" || strings.HasPrefix(e.key, "remote.") && strings.HasSuffix(e.key, ".promisor") && e.value != "false" {
			partial = true
		}
	}
	if uploadPack != "" && partial {
		// Git takes the first remote.<x>.uploadpack, the repository's, so
		// no option overrides it, and a partial clone may fetch (running it
		// when the remote is a local path) during any checkout.
		return nil, nil, fmt.Errorf("the repository's configuration sets %s, a program git would run to fetch the missing objects of this partial clone, and git lets no option override it; moat runs no program a repository configures: remove that setting", uploadPack)
	}
	set := func(key, value string) error {
		if strings.Contains(key, "=") {
			// "-c" splits at the first "=": the key cannot be given.
			return fmt.Errorf("the repository's configuration sets %s, a program git would run, and its name has a \"=\" that moat cannot override; moat runs no program a repository configures: remove that setting", key)
		}
		args = append(args, "-c", key+"="+value)
		return nil
	}
	filters := map[string]bool{} // filter drivers changed here
	effective := map[string]string{}
	for _, k := range keys {
		e := last[k]
		effective[k] = e.value
		if trusted(e.scope) || isHelper(k) || k == "core.gitproxy" || lfsLocal[k] == e.value ||
			strings.HasPrefix(k, "remote.") || k == "extensions.partialclone" {
			continue // not overridable with -c, or not a program
		}
		v, ok := lastTrusted[k]
		if !ok {
			v = harmless(k)
		}
		if err := set(k, v); err != nil {
			return nil, nil, err
		}
		effective[k] = v
		if name, ok := filterName(k); ok {
			filters[name] = true
		}
	}
	// A filter left with no command passes content unchanged, which a
	// "required" filter would call a failure.
	for _, name := range slices.Sorted(maps.Keys(filters)) {
		p := "filter." + name + "."
		if effective[p+"clean"] == "" && effective[p+"smudge"] == "" && effective[p+"process"] == "" {
			if err := set(p+"required", "false"); err != nil {
				return nil, nil, err
			}
		}
	}
	if hostileHelpers {
		// Helpers add up; an empty value resets the list. The trusted
		// ones go back in their order.
		args = append(args, "-c", "credential.helper=")
		for _, e := range entries {
			if isHelper(e.key) && trusted(e.scope) && !strings.Contains(e.key, "=") {
				args = append(args, "-c", e.key+"="+e.value)
			}
		}
	}
	if hostileProxy {
		// The first matching core.gitProxy wins, so "-c" cannot override
		// the repository's; the environment variable does, and empty
		// means no proxy. One the user set is kept.
		if _, set := os.LookupEnv("GIT_PROXY_COMMAND"); !set {
			env = append(env, "GIT_PROXY_COMMAND=")
		}
	}
	return args, env, nil
}

func isHelper(key string) bool {
	return strings.HasPrefix(key, "credential.") && strings.HasSuffix(key, ".helper")
}

// filterName returns x for filter.<x>.clean, smudge or process.
func filterName(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "filter.")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '.')
	return rest[:i], i > 0
}

// repoSelectors returns the options among git's leading global options that
// choose the repository (-C, --git-dir, --work-tree, --bare), for the
// look-up to see the same repository, and whether there are any.
func repoSelectors(args []string) ([]string, bool) {
	var sel []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-C" || a == "--git-dir" || a == "--work-tree":
			if i+1 < len(args) {
				sel = append(sel, a, args[i+1])
			}
			i++
		case a == "-c" || a == "--namespace":
			i++ // an option with a separate value
		case strings.HasPrefix(a, "--git-dir=") || strings.HasPrefix(a, "--work-tree=") || a == "--bare":
			sel = append(sel, a)
		case !strings.HasPrefix(a, "-"):
			return sel, len(sel) > 0 // the subcommand
		}
	}
	return sel, len(sel) > 0
}

// envSelectsRepo reports whether extra environment entries may change
// which repository or configuration git reads.
func envSelectsRepo(env []string) bool {
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		k = strings.ToUpper(k)
		if strings.HasPrefix(k, "GIT_") && !strings.HasPrefix(k, "GIT_AUTHOR_") && !strings.HasPrefix(k, "GIT_COMMITTER_") {
			return true
		}
	}
	return false
}

// mayNamePrograms reports whether the repository whose top level is dir
// may set, in its own configuration files, one of programKeys. It is false
// only when dir/.git leads to a git directory laid out as git expects and
// none of its config files (config, config.worktree) contains one of
// programWords, in which case the look-up is skipped. Anything unusual
// (dir below the top level, a missing file, an include) answers true.
func mayNamePrograms(dir string) bool {
	if dir == "" {
		return true
	}
	dotGit := filepath.Join(dir, ".git")
	fi, err := os.Stat(dotGit)
	if err != nil {
		return true
	}
	gitDir := dotGit
	if !fi.IsDir() { // a linked worktree: "gitdir: <path>"
		data, err := ReadText(nil, dotGit)
		if err != nil {
			return true
		}
		p, ok := strings.CutPrefix(strings.TrimRight(string(data), "\r\n"), "gitdir: ")
		if !ok || p == "" {
			return true
		}
		gitDir = p
		if !filepath.IsAbs(p) {
			gitDir = filepath.Join(dir, p)
		}
	}
	commonDir := gitDir
	if data, err := ReadText(nil, filepath.Join(gitDir, "commondir")); err == nil {
		p := strings.TrimRight(string(data), "\r\n")
		commonDir = p
		if !filepath.IsAbs(p) {
			commonDir = filepath.Join(gitDir, p)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return true
	}
	// What git checks before it takes a directory for a git directory;
	// otherwise it would look further up, at files not read here.
	if !isDir(filepath.Join(commonDir, "objects")) || !isDir(filepath.Join(commonDir, "refs")) || !isFile(filepath.Join(gitDir, "HEAD")) {
		return true
	}
	files := []string{filepath.Join(commonDir, "config")}
	for _, p := range []string{filepath.Join(gitDir, "config.worktree"), filepath.Join(commonDir, "config.worktree")} {
		if exists(p) {
			files = append(files, p)
		}
	}
	for _, p := range files {
		data, err := ReadText(nil, p)
		if err != nil {
			return true // git reads it and says what is wrong
		}
		lower := bytes.ToLower(data)
		for _, w := range programWords {
			if bytes.Contains(lower, []byte(w)) {
				return true
			}
		}
	}
	return false
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
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
	// Only git's own line end is cut: a path may end in a space.
	top, err := Run(ctx, timeout, dir, "rev-parse", "--show-toplevel")
	top = strings.TrimSuffix(top, "\n")
	var ge *Error
	if err == nil && top == "" || errors.As(err, &ge) && strings.Contains(ge.Stderr, "must be run in a work tree") {
		return Repo{}, fmt.Errorf("%s is a bare repository or inside a .git directory; moat needs a working tree", dir)
	}
	if err != nil {
		if ge != nil && ge.ExitCode == 128 && strings.Contains(ge.Stderr, "not a git repository") {
			return Repo{}, &NotRepoError{Dir: dir, Err: err}
		}
		return Repo{}, fmt.Errorf("%s is not inside a git repository: %w", dir, err)
	}
	if strings.Contains(top, "\n") {
		return Repo{}, fmt.Errorf("the repository's path %q holds a line break, which moat does not support (git prints paths one per line): rename or move it", top)
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

// NotRepoError: the directory is not inside a git repository.
type NotRepoError struct {
	Dir string
	Err error // what git said
}

func (e *NotRepoError) Error() string {
	return e.Dir + " is not inside a git repository: moat works on a git repository; run `git init` first"
}
func (e *NotRepoError) Unwrap() error { return e.Err }

// NoCommitsError: the repository has no commit yet, so a run or a
// sandbox has nothing to start from.
type NoCommitsError struct{ Repo string }

func (e *NoCommitsError) Error() string {
	return "the repository " + e.Repo + " has no commits yet, so there is nothing to start from; make one first:\n  git commit --allow-empty -m init"
}

// Head returns the commit HEAD points at in the repository at top, or a
// *NoCommitsError when there is none yet.
func Head(ctx context.Context, timeout time.Duration, top string) (string, error) {
	sha, err := Line(ctx, timeout, top, "rev-parse", "-q", "--verify", "HEAD^{commit}")
	if sha == "" {
		if err == nil || ExitCode(err) == 1 {
			return "", &NoCommitsError{Repo: top}
		}
		return "", err
	}
	return sha, nil
}

// MoatDir is the directory moat keeps its files in, inside a repository's
// main working tree. Its working files are hidden from git through
// .git/info/exclude; the rest (config.toml, prompt.md, made by moat init)
// is the user's to commit.
const MoatDir = ".moat"

// excludeLines hide moat's working files from git: worktrees, saved
// patches, logs, work kept for recovery, and the credentials file.
var excludeLines = []string{
	"/" + MoatDir + "/worktrees/",
	"/" + MoatDir + "/kept/",
	"/" + MoatDir + "/patches/",
	"/" + MoatDir + "/logs/",
	"/" + MoatDir + "/.env",
}

// EnsureExcluded adds the lines hiding moat's working files to the
// repository's info/exclude, those not there yet. The user's .gitignore is
// never touched. The file is opened through an os.Root on commonDir: a
// symbolic link there that leads out of the git directory (to ~/.bashrc,
// say, in a repository someone else made) is not followed. Callers that may
// run concurrently hold Lock.
func EnsureExcluded(commonDir string) error {
	p := filepath.Join(commonDir, "info", "exclude")
	root, err := os.OpenRoot(commonDir)
	if err != nil {
		return err
	}
	defer root.Close()
	rel := filepath.Join("info", "exclude")
	data, err := ReadText(root, rel)
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
	if err := root.MkdirAll("info", 0o755); err != nil {
		return err
	}
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
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
	// One command for both; the last value of a key is the one git uses.
	out, err := Run(ctx, timeout, dir, "config", "-z", "--get-regexp", `^user\.(name|email)$`)
	if err != nil && ExitCode(err) != 1 { // 1: neither is set
		return Identity{}, err
	}
	var id Identity
	for _, rec := range SplitZ(out) {
		switch k, v, _ := strings.Cut(rec, "\n"); k {
		case "user.name":
			id.Name = v
		case "user.email":
			id.Email = v
		}
	}
	id.Configured = id.Name != "" && id.Email != ""
	if id.Name == "" {
		id.Name = FallbackName
	}
	if id.Email == "" {
		id.Email = FallbackEmail
	}
	return id, nil
}

// Args returns "-c user.name=... -c user.email=..." for a git command line.
func (id Identity) Args() []string {
	return []string{"-c", "user.name=" + id.Name, "-c", "user.email=" + id.Email}
}

// CheckBranchName refuses a name git would not take as a branch.
func CheckBranchName(ctx context.Context, dir, name string) error {
	if strings.HasPrefix(name, "-") {
		return fmt.Errorf("%q is not a valid branch name: it starts with -", name)
	}
	if _, err := Run(ctx, 0, dir, "check-ref-format", "--branch", name); err != nil {
		return fmt.Errorf("%q is not a valid branch name", name)
	}
	return nil
}
