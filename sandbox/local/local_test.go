//go:build unix

package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/testenv"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/sandboxtest"
)

// quiet is a logger for tests that do not look at warnings.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// modes are the two ways the provider runs commands.
type mode struct {
	name string
	cfg  func(t *testing.T) Config
}

var modes = []mode{
	{"bwrap", func(t *testing.T) Config {
		requireBwrap(t)
		return Config{Root: t.TempDir(), Logger: quiet}
	}},
	{"plain", func(t *testing.T) Config {
		return Config{Root: t.TempDir(), Bwrap: BwrapOff, Logger: quiet}
	}},
}

func requireBwrap(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("bubblewrap is Linux only")
	}
	testenv.RequireBinary(t, "bwrap", "bubblewrap")
}

// forModes runs f as a parallel subtest for each mode.
func forModes(t *testing.T, f func(t *testing.T, p *Provider)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			p := New(m.cfg(t))
			if got, want := p.Isolated(), m.name == "bwrap"; got != want {
				t.Fatalf("Isolated() = %v in %s mode", got, m.name)
			}
			f(t, p)
		})
	}
}

func create(t *testing.T, p *Provider) sandbox.Handle {
	t.Helper()
	h, err := p.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

func run(t *testing.T, h sandbox.Handle, cmd string, env map[string]string) sandbox.ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r, err := h.Exec(ctx, cmd, sandbox.ExecOptions{Env: env})
	if err != nil {
		t.Fatalf("Exec(%q): %v", cmd, err)
	}
	return r
}

func TestConformance(t *testing.T) {
	forModes(t, func(t *testing.T, p *Provider) {
		var o sandboxtest.Options
		if !p.Isolated() && os.Geteuid() != 0 {
			if err := exec.Command("sudo", "-n", "true").Run(); err != nil {
				o.NoSudo = fmt.Sprintf("plain mode runs Sudo commands with sudo -n, which does not work here: %v", err)
			}
		}
		sandboxtest.RunWith(t, p, o)
	})
}

func TestLayout(t *testing.T) {
	forModes(t, func(t *testing.T, p *Provider) {
		h := create(t, p)
		dir := filepath.Dir(filepath.Dir(h.WorkDir()))
		if !strings.HasPrefix(filepath.Base(dir), "moat-local-") || filepath.Base(h.WorkDir()) != "workspace" {
			t.Fatalf("WorkDir %s: want <Root>/moat-local-*/home/workspace", h.WorkDir())
		}
		st, err := os.Stat(dir)
		if err != nil || st.Mode().Perm() != 0o700 {
			t.Fatalf("sandbox dir: %v, mode %v; want 0700", err, st.Mode())
		}
		r := run(t, h, `printf '%s\n' "$HOME" "$TMPDIR" "$TERM" "$PWD"; echo x > "$TMPDIR/t"`, nil)
		want := fmt.Sprintf("%s\n%s\n%s\n%s\n", filepath.Join(dir, "home"), filepath.Join(dir, "tmp"), "dumb", h.WorkDir())
		if r.ExitCode != 0 || r.Stdout != want {
			t.Fatalf("exit %d stdout %q stderr %q; want %q", r.ExitCode, r.Stdout, r.Stderr, want)
		}
		// The host environment does not leak in: only a minimal base.
		allowed := map[string]bool{"PATH": true, "HOME": true, "TMPDIR": true, "TERM": true, "USER": true, "LANG": true, "LC_ALL": true, "PWD": true, "OLDPWD": true, "SHLVL": true, "_": true}
		for _, kv := range strings.Split(run(t, h, "env", nil).Stdout, "\n") {
			k, _, _ := strings.Cut(kv, "=")
			if _, onHost := os.LookupEnv(k); onHost && !allowed[k] {
				t.Errorf("host variable %s reached the sandbox", k)
			}
		}
	})
}

// TestBwrapConfinesWrites: under bwrap a command cannot write outside its
// sandbox, even to a directory it can see, while WorkDir is writable.
func TestBwrapConfinesWrites(t *testing.T) {
	requireBwrap(t)
	// Not under /tmp: under bwrap /tmp is the sandbox's own, so a host
	// directory there would not even be visible.
	base := hostDirOutsideTmp(t)
	p := New(Config{Root: filepath.Join(base, "root"), Logger: quiet})
	if !p.Isolated() {
		t.Fatal("bwrap is installed but Isolated() is false")
	}
	h := create(t, p)
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o777); err != nil {
		t.Fatal(err)
	}
	rootFile := "/root/moat-local-escape-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	hostTmpFile := filepath.Join(os.TempDir(), "moat-local-escape-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	t.Cleanup(func() { os.Remove(rootFile); os.Remove(hostTmpFile) })

	for _, target := range []string{filepath.Join(outside, "x"), rootFile, "/etc/moat-local-escape", filepath.Join(filepath.Dir(filepath.Dir(h.WorkDir())), "..", "sibling")} {
		for _, sudo := range []bool{false, true} {
			r, err := h.Exec(t.Context(), `touch "$F"`, sandbox.ExecOptions{Env: map[string]string{"F": target}, Sudo: sudo})
			if err != nil {
				t.Fatal(err)
			}
			if r.ExitCode == 0 {
				t.Errorf("touch %s (sudo %v) succeeded inside bwrap", target, sudo)
			}
			if _, err := os.Lstat(target); err == nil {
				t.Errorf("%s exists on the host after a sandboxed touch", target)
			}
		}
	}
	// The outside directory is hidden: the sandbox binds only system dirs.
	if r := run(t, h, `test -d "$D" && echo visible`, map[string]string{"D": outside}); r.Stdout == "visible\n" {
		t.Errorf("host directory %s visible inside bwrap", outside)
	}
	// /tmp is the sandbox's own.
	if r := run(t, h, `echo hi > "$F" && cat "$F"`, map[string]string{"F": hostTmpFile}); r.ExitCode != 0 || r.Stdout != "hi\n" {
		t.Errorf("writing to /tmp inside bwrap: exit %d %q", r.ExitCode, r.Stderr)
	}
	if _, err := os.Lstat(hostTmpFile); err == nil {
		t.Errorf("a write to /tmp inside bwrap reached the host's %s", hostTmpFile)
	}
	// WorkDir is writable and the same path on the host.
	if r := run(t, h, `echo ok > written && mkdir -p a/b && echo deep > a/b/c`, nil); r.ExitCode != 0 {
		t.Fatalf("writing in WorkDir: exit %d %q", r.ExitCode, r.Stderr)
	}
	if b, err := os.ReadFile(filepath.Join(h.WorkDir(), "a/b/c")); err != nil || string(b) != "deep\n" {
		t.Errorf("file written in WorkDir: %q, %v", b, err)
	}
	// Sudo is root in a user namespace: files stay owned by the host user.
	run(t, h, `echo root > by-root`, nil)
	r, err := h.Exec(t.Context(), `id -u; echo root > by-sudo`, sandbox.ExecOptions{Sudo: true})
	if err != nil || r.Stdout != "0\n" {
		t.Fatalf("sudo: %v %q %q", err, r.Stdout, r.Stderr)
	}
	if err := h.CopyOut(t.Context(), "by-sudo", filepath.Join(t.TempDir(), "f")); err != nil {
		t.Errorf("CopyOut of a file written with Sudo: %v", err)
	}
}

// hostDirOutsideTmp returns a fresh host directory that is not under /tmp.
func hostDirOutsideTmp(t *testing.T) string {
	t.Helper()
	for _, parent := range []string{"/var/tmp", os.Getenv("HOME")} {
		if parent == "" || strings.HasPrefix(parent, "/tmp") {
			continue
		}
		if d, err := os.MkdirTemp(parent, "moat-local-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	t.Skip("no writable directory outside /tmp")
	return ""
}

func TestPlainModeWarnsOnce(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	warnings := func() int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(buf.String(), "plain processes")
	}
	plainWarned.Store(false)
	t.Cleanup(func() { plainWarned.Store(false) })

	for range 2 {
		p := New(Config{Root: t.TempDir(), Bwrap: BwrapOff, Logger: log})
		for range 2 {
			h, err := p.Create(t.Context(), sandbox.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			h.Close(t.Context())
		}
		if p.Isolated() {
			t.Error(`Isolated() with Bwrap "off"`)
		}
	}
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings, want exactly 1 per process:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "level=WARN") {
		t.Errorf("the warning is not at level WARN: %s", buf.String())
	}

	// Auto-detection without bwrap on PATH: the warning says what to install.
	plainWarned.Store(false)
	buf.Reset()
	t.Setenv("PATH", t.TempDir())
	p := New(Config{Root: t.TempDir(), Logger: log})
	if p.Isolated() {
		t.Error("Isolated() without bwrap on PATH")
	}
	// Asking is not running: the warning comes with the first sandbox.
	if n := warnings(); n != 0 {
		t.Errorf("a probe warned: %s", buf.String())
	}
	h, err := p.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.Close(t.Context())
	if n := warnings(); n != 1 || !strings.Contains(buf.String(), "bwrap not found") || !strings.Contains(buf.String(), "install bubblewrap") {
		t.Errorf("warning without bwrap: %s", buf.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestIsolatedNoWarning(t *testing.T) {
	requireBwrap(t)
	var buf bytes.Buffer
	p := New(Config{Root: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	create(t, p)
	if !p.Isolated() || buf.Len() != 0 {
		t.Errorf("Isolated() = %v, log %q", p.Isolated(), buf.String())
	}
}

// TestExplicitBwrapMustWork: a configured bwrap path that does not work is an
// error, not a silent fall back to plain processes.
func TestExplicitBwrapMustWork(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("bubblewrap is Linux only")
	}
	falseBin, err := exec.LookPath("false")
	if err != nil {
		t.Skip(err)
	}
	for _, bw := range []string{filepath.Join(t.TempDir(), "no-bwrap"), falseBin} {
		root := t.TempDir()
		p := New(Config{Root: root, Bwrap: bw, Logger: quiet})
		if _, err := p.Create(t.Context(), sandbox.CreateOptions{}); err == nil {
			t.Errorf("Bwrap %q: Create succeeded", bw)
		}
		if p.Isolated() {
			t.Errorf("Bwrap %q: Isolated() is true", bw)
		}
		if ents, _ := os.ReadDir(root); len(ents) != 0 {
			t.Errorf("Bwrap %q: failed Create left %v behind", bw, ents)
		}
	}
}

func TestCreateOptionsEnvChecked(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	p := New(Config{Root: root, Bwrap: BwrapOff, Logger: quiet})
	_, err := p.Create(t.Context(), sandbox.CreateOptions{Env: map[string]string{"TOKEN": "hunter2\x00"}})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Create with a NUL in a value: %v", err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("failed Create left %v behind", ents)
	}
	// Root is made when missing.
	p = New(Config{Root: filepath.Join(root, "a", "b"), Bwrap: BwrapOff, Logger: quiet})
	h, err := p.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.Close(t.Context())
}

// TestCopyRefusesPlantedSymlinks: links a sandboxed command plants never
// make a copy write or read outside the sandbox.
func TestCopyRefusesPlantedSymlinks(t *testing.T) {
	forModes(t, func(t *testing.T, p *Provider) {
		h := create(t, p)
		outside := t.TempDir()
		secret := filepath.Join(outside, "secret")
		if err := os.WriteFile(secret, []byte("host secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(t.TempDir(), "src")
		if err := os.WriteFile(src, []byte("payload"), 0o644); err != nil {
			t.Fatal(err)
		}
		srcDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(srcDir, "f"), []byte("payload"), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := run(t, h, `ln -s "$O" evil && ln -s "$S" evil-file && mkdir sub && ln -s ../../../.. sub/up && ln -s "$S" replace-me`,
			map[string]string{"O": outside, "S": secret}); r.ExitCode != 0 {
			t.Fatalf("planting links: %q", r.Stderr)
		}

		for _, dst := range []string{"evil/x", "evil/new/x", "sub/up/escaped", "evil-file/x"} {
			if err := h.CopyIn(t.Context(), src, dst); err == nil {
				t.Errorf("CopyIn(file, %q) followed a planted link", dst)
			}
			if err := h.CopyIn(t.Context(), srcDir, dst); err == nil {
				t.Errorf("CopyIn(dir, %q) followed a planted link", dst)
			}
		}
		if err := h.CopyIn(t.Context(), srcDir, "evil"); err == nil {
			t.Error("CopyIn(dir) merged into a planted link to a host directory")
		}
		// A file copied onto a planted link replaces the link, never the
		// file it points to.
		if err := h.CopyIn(t.Context(), src, "replace-me"); err != nil {
			t.Errorf("CopyIn over a link: %v", err)
		}
		for _, dst := range []string{"evil-file", "evil/secret", "sub/up/x"} {
			if err := h.CopyOut(t.Context(), dst, filepath.Join(t.TempDir(), "out")); err == nil {
				t.Errorf("CopyOut(%q) read through a planted link", dst)
			}
		}
		ents, _ := os.ReadDir(outside)
		if b, _ := os.ReadFile(secret); len(ents) != 1 || string(b) != "host secret" {
			t.Errorf("the host directory changed: %v, secret %q", ents, b)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(h.WorkDir()))), "escaped")); err == nil {
			t.Error("CopyIn wrote next to the sandbox directory")
		}

		// A FIFO is not a file to copy, and does not hang CopyOut.
		run(t, h, "mkfifo fifo", nil)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := h.CopyOut(ctx, "fifo", filepath.Join(t.TempDir(), "out")); err == nil || ctx.Err() != nil {
			t.Errorf("CopyOut of a FIFO: %v (ctx %v)", err, ctx.Err())
		}
	})
}

func TestCopyPathsOutsideSandboxRefused(t *testing.T) {
	forModes(t, func(t *testing.T, p *Provider) {
		h := create(t, p)
		src := filepath.Join(t.TempDir(), "src")
		if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		outsideDir := t.TempDir()
		sandboxDir := filepath.Dir(filepath.Dir(h.WorkDir()))
		for _, dst := range []string{filepath.Join(outsideDir, "x"), "/etc/moat-x", "../../../x", "../../../../x", sandboxDir + "-sibling/x"} {
			err := h.CopyIn(t.Context(), src, dst)
			if err == nil || !strings.Contains(err.Error(), "outside the sandbox") {
				t.Errorf("CopyIn to %q: %v, want an 'outside the sandbox' error", dst, err)
			}
		}
		if _, err := os.Stat(filepath.Join(outsideDir, "x")); err == nil {
			t.Error("CopyIn wrote outside the sandbox")
		}
		for _, from := range []string{src, "/etc/passwd", "../../../x"} {
			err := h.CopyOut(t.Context(), from, filepath.Join(t.TempDir(), "out"))
			if err == nil || !strings.Contains(err.Error(), "outside the sandbox") {
				t.Errorf("CopyOut from %q: %v, want an 'outside the sandbox' error", from, err)
			}
		}
		// Inside the sandbox but outside WorkDir is fine.
		if err := h.CopyIn(t.Context(), src, filepath.Join(sandboxDir, "home", ".config", "x")); err != nil {
			t.Errorf("CopyIn under HOME: %v", err)
		}
	})
}

func TestCopyErrors(t *testing.T) {
	forModes(t, func(t *testing.T, p *Provider) {
		h := create(t, p)
		run(t, h, "mkdir d && echo f > f", nil)
		out := filepath.Join(t.TempDir(), "out")
		for from, want := range map[string]string{"d": "is a directory", "missing": "no such file"} {
			if err := h.CopyOut(t.Context(), from, out); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("CopyOut(%q): %v, want %q", from, err, want)
			}
		}
		if err := h.CopyOut(t.Context(), "f", t.TempDir()); err == nil || !strings.Contains(err.Error(), "directory") {
			t.Errorf("CopyOut onto a host directory: %v", err)
		}
		src := filepath.Join(t.TempDir(), "src")
		os.WriteFile(src, []byte("x"), 0o644)
		if err := h.CopyIn(t.Context(), src, "d"); err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Errorf("CopyIn of a file onto a directory: %v", err)
		}
		// A read-only directory in the sandbox can still be merged into.
		run(t, h, "mkdir -p ro && chmod 555 ro", nil)
		srcDir := t.TempDir()
		os.WriteFile(filepath.Join(srcDir, "new"), []byte("n"), 0o644)
		os.Chmod(srcDir, 0o555)
		t.Cleanup(func() { os.Chmod(srcDir, 0o755) })
		if err := h.CopyIn(t.Context(), srcDir, "ro"); err != nil {
			t.Errorf("CopyIn into a read-only directory: %v", err)
		}
		if r := run(t, h, "stat -c %a ro; cat ro/new", nil); r.Stdout != "555\nn" {
			t.Errorf("after merge: %q", r.Stdout)
		}
		// A host tree that holds the sandbox is refused, not copied forever.
		sandboxParent := filepath.Dir(filepath.Dir(filepath.Dir(h.WorkDir())))
		if err := h.CopyIn(t.Context(), sandboxParent, "self"); err == nil || !strings.Contains(err.Error(), "contains the sandbox") {
			t.Errorf("CopyIn of the sandbox's parent: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := h.CopyIn(ctx, src, "g"); !errors.Is(err, context.Canceled) {
			t.Errorf("CopyIn with a cancelled ctx: %v", err)
		}
		// Temporary files do not linger.
		if r := run(t, h, "find . -name '.moat-*'", nil); r.Stdout != "" {
			t.Errorf("temporary files left behind: %q", r.Stdout)
		}
	})
}

// TestCloseKillsAndRemoves: Close kills running commands (and their
// children), waits for them, and removes everything, read-only dirs too.
func TestCloseKillsAndRemoves(t *testing.T) {
	forModes(t, func(t *testing.T, p *Provider) {
		h, err := p.Create(t.Context(), sandbox.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Dir(filepath.Dir(h.WorkDir()))
		marker := uniqueSleep()
		run(t, h, "mkdir -p ro/sub && touch ro/sub/f && chmod 555 ro/sub ro && chmod 000 ro/sub", nil)
		done := make(chan error, 1)
		started := make(chan struct{})
		var once sync.Once
		go func() {
			_, err := h.Exec(context.Background(), `sh -c 'sleep `+marker+`; :' & echo up; sleep `+marker, sandbox.ExecOptions{
				OnLine: func(string) { once.Do(func() { close(started) }) },
			})
			done <- err
		}()
		<-started
		waitFor(t, "the sleeps to start", func() bool { return len(sleeping(marker)) == 2 })

		ctx, cancel := context.WithCancel(context.Background())
		cancel() // Close works with a cancelled ctx
		start := time.Now()
		if err := h.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Close took %v", d)
		}
		select {
		case err := <-done:
			if !errors.Is(err, sandbox.ErrClosed) {
				t.Errorf("Exec running during Close returned %v, want ErrClosed", err)
			}
		case <-time.After(time.Second):
			t.Error("the Exec running during Close did not return")
		}
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("sandbox dir %s still there after Close: %v", dir, err)
		}
		waitFor(t, "the killed processes to disappear", func() bool { return len(sleeping(marker)) == 0 })
		if err := h.Close(ctx); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := h.Exec(t.Context(), "true", sandbox.ExecOptions{}); !errors.Is(err, sandbox.ErrClosed) {
			t.Errorf("Exec after Close: %v", err)
		}
	})
}

// TestCancelKillsGrandchildren: cancelling ctx kills the whole tree, also a
// grandchild whose parent waits for it, and Exec returns promptly.
func TestCancelKillsGrandchildren(t *testing.T) {
	forModes(t, func(t *testing.T, p *Provider) {
		h := create(t, p)
		marker := uniqueSleep()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := h.Exec(ctx, `sh -c 'sleep `+marker+` & wait' & (sleep `+marker+` </dev/null >/dev/null 2>&1 &) ; echo up; wait`, sandbox.ExecOptions{
				OnLine: func(string) {},
			})
			done <- err
		}()
		waitFor(t, "the sleeps to start", func() bool { return len(sleeping(marker)) == 2 })
		start := time.Now()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Exec returned %v, want an error wrapping context.Canceled", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Exec returned %v after cancel", d)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Exec did not return after cancel")
		}
		waitFor(t, "the grandchildren to die", func() bool { return len(sleeping(marker)) == 0 })
	})
}

// TestBackgroundJobsEndWithCommand: what a command leaves running dies when
// it exits (in both modes), and Exec does not wait for it.
func TestBackgroundJobsEndWithCommand(t *testing.T) {
	forModes(t, func(t *testing.T, p *Provider) {
		h := create(t, p)
		marker := uniqueSleep()
		start := time.Now()
		r := run(t, h, `sleep `+marker+` & echo started`, nil)
		if r.Stdout != "started\n" || time.Since(start) > ioGrace {
			t.Errorf("stdout %q after %v", r.Stdout, time.Since(start))
		}
		waitFor(t, "the background job to die", func() bool { return len(sleeping(marker)) == 0 })
	})
}

func TestExecDetails(t *testing.T) {
	forModes(t, func(t *testing.T, p *Provider) {
		h := create(t, p)
		r := run(t, h, "echo never", nil)
		if r.ExitCode != 0 {
			t.Fatal(r)
		}
		r, err := h.Exec(t.Context(), "echo ran", sandbox.ExecOptions{Dir: "no/such/dir"})
		if err != nil || r.ExitCode != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, "no/such/dir") {
			t.Errorf("missing Dir: %v exit %d stdout %q stderr %q; want exit 1 and a message", err, r.ExitCode, r.Stdout, r.Stderr)
		}
		if r := run(t, h, "kill -TERM $$", nil); r.ExitCode != 143 {
			t.Errorf("killed by SIGTERM: exit %d, want 143", r.ExitCode)
		}
		// Stdin from a reader that never ends: a command that does not read it
		// still returns.
		pr, pw := io.Pipe()
		defer pw.Close()
		start := time.Now()
		r, err = h.Exec(t.Context(), "echo done", sandbox.ExecOptions{Stdin: pr})
		if err != nil || r.Stdout != "done\n" || time.Since(start) > stdinGrace+5*time.Second {
			t.Errorf("endless stdin: %v %q after %v", err, r.Stdout, time.Since(start))
		}
		// An *os.File is passed as it is: an endless pipe, and a file.
		fr, fw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer fr.Close()
		defer fw.Close()
		start = time.Now()
		r, err = h.Exec(t.Context(), "echo done", sandbox.ExecOptions{Stdin: fr})
		if err != nil || r.Stdout != "done\n" || time.Since(start) > 5*time.Second {
			t.Errorf("endless *os.File stdin: %v %q after %v", err, r.Stdout, time.Since(start))
		}
		fw.WriteString("via pipe\n")
		fw.Close()
		if r, err = h.Exec(t.Context(), "cat", sandbox.ExecOptions{Stdin: fr}); err != nil || r.Stdout != "via pipe\n" {
			t.Errorf("*os.File stdin: %v %q", err, r.Stdout)
		}
		// Stdin is closed at EOF.
		r, err = h.Exec(t.Context(), "wc -c", sandbox.ExecOptions{Stdin: strings.NewReader("12345")})
		if err != nil || strings.TrimSpace(r.Stdout) != "5" {
			t.Errorf("stdin: %v %q", err, r.Stdout)
		}
		// A cancelled ctx before the start runs nothing.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := h.Exec(ctx, "touch should-not-exist", sandbox.ExecOptions{}); !errors.Is(err, context.Canceled) {
			t.Errorf("Exec with a cancelled ctx: %v", err)
		}
		if _, err := os.Stat(filepath.Join(h.WorkDir(), "should-not-exist")); err == nil {
			t.Error("Exec with a cancelled ctx ran the command")
		}
	})
}

// uniqueSleep returns a sleep duration argument no other process has, to
// find the processes a test started.
func uniqueSleep() string {
	return fmt.Sprintf("1000.%09d", time.Now().UnixNano()%1e9)
}

// sleeping returns the pids of the processes "sleep <arg>".
func sleeping(arg string) []int {
	want := []byte("sleep\x00" + arg + "\x00")
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Equal(b, want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return // no /proc to look at
	}
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
