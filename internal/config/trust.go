package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moatdev/moat/internal/registry"
)

// Setting is one setting of the file that acts on the host or takes from
// it, and so takes effect only once the user trusts the file.
type Setting struct {
	Key   string // e.g. "hooks.on_worktree_ready"
	Value string // as TOML, e.g. `["make setup"]`
	Does  string // what it would do, for a person
}

func (s Setting) String() string { return s.Key + " = " + s.Value }

// HostSettings returns the settings of c that act on the host or take from
// it: host hooks, variables forwarded from the user's environment (env and
// secret_env), the [exedev] lobby, key and known_hosts file, a sandbox
// whose kind acts on the host (sandbox.Kind.ActsOnHost: an ssh:// one),
// and a local sandbox on the host network. These
// take effect only when the file is trusted (moat trust). Everything else
// (agent, model, iterations, timeouts, branch, sandbox-side hooks, exe.dev
// VM sizes) only shapes the sandbox. prompt_file and copy are not here:
// they are confined to the repository whether trusted or not (CheckPaths).
func (c Config) HostSettings() []Setting {
	var s []Setting
	if len(c.Hooks.OnWorktreeReady) > 0 {
		s = append(s, Setting{"hooks.on_worktree_ready", tomlStrings(c.Hooks.OnWorktreeReady), "runs these commands on this computer, as you"})
	}
	if len(c.Env) > 0 {
		s = append(s, Setting{"env", tomlStrings(c.Env), "passes these variables from your environment into the sandbox"})
	}
	if len(c.SecretEnv) > 0 {
		s = append(s, Setting{"secret_env", tomlStrings(c.SecretEnv), "passes these variables from your environment into the sandbox (as secrets: redacted in moat's output)"})
	}
	if k, ok := registry.Sandboxes.Lookup(c.Sandbox); ok && k.ActsOnHost != "" {
		s = append(s, Setting{"sandbox", tomlString(c.Sandbox), k.ActsOnHost})
	}
	if c.Network == "host" {
		s = append(s, Setting{"network", tomlString(c.Network), "lets a local sandbox reach this computer's loopback services and abstract Unix sockets (X11, D-Bus, ...), through which code can run on it"})
	}
	for _, l := range c.raisedLimits() {
		s = append(s, Setting{l.key, l.value, "lets the sandbox send home more than moat's default limit, " + l.def})
	}
	s = append(s, c.ExeDev.HostSettings()...)
	return s
}

// Default limits on what comes home (gitsync's): a file can raise them only
// once trusted, since they protect this computer's disk and memory.
const (
	DefaultMaxFileSize = 100 << 20
	DefaultMaxSyncSize = 1 << 30
	DefaultMaxFiles    = 100_000
)

type raisedLimit struct{ key, value, def string }

// raisedLimits lists the limits the file sets above their defaults.
func (c Config) raisedLimits() []raisedLimit {
	var r []raisedLimit
	if c.MaxFileSize.Bytes > DefaultMaxFileSize {
		r = append(r, raisedLimit{"max_file_size", tomlString(c.MaxFileSize.String()), "100MiB per file"})
	}
	if c.MaxSyncSize.Bytes > DefaultMaxSyncSize {
		r = append(r, raisedLimit{"max_sync_size", tomlString(c.MaxSyncSize.String()), "1GiB per run"})
	}
	if c.MaxFiles > DefaultMaxFiles {
		r = append(r, raisedLimit{"max_files", fmt.Sprint(c.MaxFiles), "100000 files"})
	}
	return r
}

// HostSettings returns the [exedev] settings that act on the host or take
// from it: the lobby, the key and the known_hosts file.
func (e ExeDev) HostSettings() []Setting {
	var s []Setting
	if e.Lobby != "" {
		s = append(s, Setting{"exedev.lobby", tomlString(e.Lobby), "connects to this lobby instead of exe.dev, with your SSH key, and sends it your repository"})
	}
	if e.IdentityFile != "" {
		s = append(s, Setting{"exedev.identity_file", tomlString(e.IdentityFile), "signs in with this private key file"})
	}
	if e.KnownHostsFile != "" {
		s = append(s, Setting{"exedev.known_hosts_file", tomlString(e.KnownHostsFile), "checks host keys against this file, and writes new ones to it"})
	}
	return s
}

// WithoutHostSettings returns c with every setting HostSettings lists
// removed: what an untrusted file may still decide.
func (c Config) WithoutHostSettings() Config {
	c.Hooks.OnWorktreeReady = nil
	c.Env, c.SecretEnv = nil, nil
	if k, ok := registry.Sandboxes.Lookup(c.Sandbox); ok && k.ActsOnHost != "" {
		c.Sandbox = ""
	}
	if c.Network == "host" {
		c.Network = ""
	}
	for _, l := range c.raisedLimits() {
		switch l.key {
		case "max_file_size":
			c.MaxFileSize = Size{}
		case "max_sync_size":
			c.MaxSyncSize = Size{}
		case "max_files":
			c.MaxFiles = 0
		}
	}
	c.ExeDev.Lobby, c.ExeDev.IdentityFile, c.ExeDev.KnownHostsFile = "", "", ""
	return c
}

func tomlStrings(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// LoadData is Load that also returns the file's exact content (nil when
// there is none), which is what trust is given to. The file is read only
// as a regular file inside the repository.
func LoadData(repoRoot string) (cfg Config, data []byte, found bool, err error) {
	data, err = ReadRepoFile(repoRoot, File)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, nil, false, nil
	}
	if err != nil {
		return Config{}, nil, true, err
	}
	cfg, err = Parse(data)
	return cfg, data, true, err
}

// maxRepoFile is the most ReadRepoFile reads.
const maxRepoFile = 16 << 20

// ReadRepoFile reads rel (slash-separated, relative to repoRoot) as a
// regular file inside the repository: a symbolic link (of the file or of
// a directory on the way) that leads out of the repository is refused,
// and so is anything but a regular file. A missing file is an error
// satisfying errors.Is(err, fs.ErrNotExist).
func ReadRepoFile(repoRoot, rel string) ([]byte, error) {
	f, err := openRepoFile(repoRoot, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRepoFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if len(data) > maxRepoFile {
		return nil, &Error{File: rel, Msg: fmt.Sprintf("is larger than %d MiB", maxRepoFile>>20)}
	}
	return data, nil
}

// openRepoFile opens rel inside repoRoot, as ReadRepoFile reads it.
func openRepoFile(repoRoot, rel string) (*os.File, error) {
	local := filepath.FromSlash(rel)
	if !filepath.IsLocal(local) {
		return nil, &Error{File: rel, Msg: "is not a path inside the repository"}
	}
	root, err := os.OpenRoot(repoRoot)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// Stat, not Open, first: opening a FIFO would wait for a writer.
	st, err := root.Stat(local)
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := os.Lstat(filepath.Join(repoRoot, local)); errors.Is(lerr, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
	}
	if err != nil {
		if out := escapes(repoRoot, local); out != "" {
			return nil, &Error{File: rel, Msg: "is a symbolic link to " + out + ", outside the repository: moat reads it only as a regular file inside the repository"}
		}
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if !st.Mode().IsRegular() {
		return nil, &Error{File: rel, Msg: fmt.Sprintf("is not a regular file (%s): moat reads it only as a regular file inside the repository", describeMode(st.Mode()))}
	}
	f, err := root.Open(local)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if st2, err := f.Stat(); err != nil || !os.SameFile(st, st2) {
		f.Close()
		return nil, &Error{File: rel, Msg: "changed while moat read it"}
	}
	return f, nil
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

// escapes returns where rel leads when it resolves (through symbolic
// links) to a place outside repoRoot, or "" when it does not (or cannot
// be resolved).
func escapes(repoRoot, rel string) string {
	base, err := filepath.EvalSymlinks(repoRoot)
	if err != nil {
		return ""
	}
	// The longest part of the path that exists: a missing file under a
	// directory link that leads out still leads out.
	q := filepath.Join(base, rel)
	for {
		if _, err := os.Lstat(q); err == nil {
			break
		}
		parent := filepath.Dir(q)
		if parent == q || !within(base, parent) {
			return ""
		}
		q = parent
	}
	resolved, err := filepath.EvalSymlinks(q)
	if err != nil {
		// A dangling link: where does it point?
		target, lerr := os.Readlink(q)
		if lerr != nil {
			return ""
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(q), target)
		}
		resolved = filepath.Clean(target)
	}
	if within(base, resolved) {
		return ""
	}
	return resolved
}

// within reports whether p is base or below it.
func within(base, p string) bool {
	r, err := filepath.Rel(base, p)
	return err == nil && filepath.IsLocal(r) || r == "."
}

// CheckPaths checks that prompt_file and every copy path stay inside the
// repository at repoRoot, symbolic links resolved, and that prompt_file
// is a regular file (not .moat/.env). It applies whether or not the file
// is trusted: no setting of a repository's file reads outside it.
func (c Config) CheckPaths(repoRoot string) error {
	fail := func(key, msg string) error {
		return &Error{File: File, Key: key, Msg: msg}
	}
	if c.PromptFile != "" {
		rel, ok := repoRel(repoRoot, c.PromptFile)
		show := "prompt_file = " + tomlString(c.PromptFile)
		if !ok {
			return fail("prompt_file", show+" is outside the repository: prompt_file must name a file inside it, such as "+tomlString(DefaultPromptFile)+" (moat refuses this whether or not the file is trusted)")
		}
		if out := escapes(repoRoot, rel); out != "" {
			return fail("prompt_file", show+" is a symbolic link to "+out+", outside the repository: prompt_file must name a regular file inside it (moat refuses this whether or not the file is trusted)")
		}
		if sameFile(repoRoot, rel, EnvFile) {
			return fail("prompt_file", show+" is "+EnvFile+", the credentials: they are never sent to the agent as a prompt")
		}
	}
	for i, item := range c.Copy {
		show := fmt.Sprintf("copy item %d = %s", i+1, tomlString(item))
		if !filepath.IsLocal(filepath.FromSlash(item)) {
			return fail("copy", show+" is not a path inside the repository: copy takes only paths relative to the repository root, such as \"node_modules\" (moat refuses this whether or not the file is trusted)")
		}
		if out := escapes(repoRoot, filepath.FromSlash(item)); out != "" {
			return fail("copy", show+" is a symbolic link to "+out+", outside the repository: copy takes only what is inside it (moat refuses this whether or not the file is trusted)")
		}
		if out := linkOut(repoRoot, filepath.FromSlash(item)); out != "" {
			return fail("copy", show+" holds "+out+": copy takes only what is inside the repository (moat refuses this whether or not the file is trusted)")
		}
	}
	return nil
}

// CopyProblem says what is wrong with copying item (a path relative to
// repoRoot) into a sandbox, as copy and --copy would: "" when it is
// inside the repository and leads nowhere out of it.
func CopyProblem(repoRoot, item string) string {
	rel := filepath.FromSlash(item)
	if !filepath.IsLocal(rel) {
		return "is not a path inside the repository"
	}
	if out := escapes(repoRoot, rel); out != "" {
		return "is a symbolic link to " + out + ", outside the repository"
	}
	if out := linkOut(repoRoot, rel); out != "" {
		return "holds " + out
	}
	return ""
}

// repoRel returns p (absolute, or relative to repoRoot) relative to
// repoRoot, and whether it is inside it (lexically).
func repoRel(repoRoot, p string) (string, bool) {
	p = filepath.FromSlash(p)
	if filepath.IsAbs(p) {
		r, err := filepath.Rel(repoRoot, p)
		if err != nil {
			return "", false
		}
		p = r
	}
	return filepath.Clean(p), filepath.IsLocal(p)
}

// sameFile reports whether rel and other (both inside repoRoot) are one
// file.
func sameFile(repoRoot, rel, other string) bool {
	a, err1 := os.Stat(filepath.Join(repoRoot, rel))
	b, err2 := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(other)))
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// linkOut walks the directory rel (when it is one) and describes the first
// symbolic link in it that leads outside repoRoot, or returns "".
func linkOut(repoRoot, rel string) string {
	base, err := filepath.EvalSymlinks(repoRoot)
	if err != nil {
		return ""
	}
	top := filepath.Join(base, rel)
	st, err := os.Stat(top)
	if err != nil || !st.IsDir() {
		return ""
	}
	found := ""
	filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		r, _ := filepath.Rel(base, path)
		if out := escapes(base, r); out != "" {
			found = fmt.Sprintf("a symbolic link %s to %s, outside the repository", filepath.ToSlash(r), out)
			return filepath.SkipAll
		}
		return nil
	})
	return found
}
