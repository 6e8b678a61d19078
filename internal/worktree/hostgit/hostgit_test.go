package hostgit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	home, _ := os.MkdirTemp("", "hostgit-test-")
	os.Setenv("HOME", home)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	os.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, "gitconfig"))
	code := m.Run()
	os.RemoveAll(home)
	os.Exit(code)
}

func TestErrorNamesCommandAndOutput(t *testing.T) {
	dir := t.TempDir()
	_, err := Run(context.Background(), time.Minute, dir, "rev-parse", "--verify", "no such thing")
	var ge *Error
	if !errors.As(err, &ge) || ge.ExitCode == 0 {
		t.Fatalf("err = %#v", err)
	}
	msg := err.Error()
	for _, want := range []string{"git rev-parse --verify 'no such thing'", dir, "exit status", "not a git repository"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("%q lacks %q", msg, want)
		}
	}
}

func TestTimeoutKills(t *testing.T) {
	start := time.Now()
	_, err := Run(context.Background(), 200*time.Millisecond, t.TempDir(), "-c", "alias.zz=!sleep 20", "zz")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("GIT_DIR", "/nonexistent")
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	out, err := Run(context.Background(), time.Minute, t.TempDir(), "-c", "alias.e=!env", "e")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"LC_ALL=C\n", "GIT_TERMINAL_PROMPT=0\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("env lacks %q", want)
		}
	}
	if strings.Contains(out, "GIT_DIR=/nonexistent") {
		t.Fatal("GIT_DIR inherited")
	}
}

func TestLocateAndExclude(t *testing.T) {
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	if _, err := Locate(context.Background(), time.Minute, dir); err == nil {
		t.Fatal("Locate outside a repository succeeded")
	}
	if _, err := Run(context.Background(), time.Minute, dir, "init", "-q"); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	r, err := Locate(context.Background(), time.Minute, filepath.Join(dir, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	if r.TopLevel != dir || r.CommonDir != filepath.Join(dir, ".git") || r.GitDir != r.CommonDir || r.MainRoot != dir {
		t.Fatalf("%+v", r)
	}
	ex := filepath.Join(dir, ".git", "info", "exclude")
	os.WriteFile(ex, []byte("*.tmp"), 0o644) // no final newline
	for range 3 {
		if err := EnsureExcluded(r.CommonDir); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(ex)
	if strings.Count(string(data), "/.moat/worktrees/\n") != 1 || strings.Count(string(data), "/.moat/.env\n") != 1 || !strings.HasPrefix(string(data), "*.tmp\n") {
		t.Fatalf("exclude:\n%s", data)
	}
	bare := t.TempDir()
	Run(context.Background(), time.Minute, bare, "init", "-q", "--bare")
	if _, err := Locate(context.Background(), time.Minute, bare); err == nil || !strings.Contains(err.Error(), "bare") {
		t.Fatalf("bare: %v", err)
	}
}

func TestIdentityFallback(t *testing.T) {
	dir := t.TempDir()
	Run(context.Background(), time.Minute, dir, "init", "-q")
	id, err := ReadIdentity(context.Background(), time.Minute, dir)
	if err != nil || id.Configured || id.Name != FallbackName || id.Email != FallbackEmail {
		t.Fatalf("%+v %v", id, err)
	}
	Run(context.Background(), time.Minute, dir, "config", "user.name", "Me")
	Run(context.Background(), time.Minute, dir, "config", "user.email", "me@x")
	id, err = ReadIdentity(context.Background(), time.Minute, dir)
	if err != nil || !id.Configured || id.Name != "Me" {
		t.Fatalf("%+v %v", id, err)
	}
}

func TestLockExcludes(t *testing.T) {
	dir := t.TempDir()
	var inside, max atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			unlock, err := Lock(context.Background(), dir)
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			if n > max.Load() {
				max.Store(n)
			}
			time.Sleep(5 * time.Millisecond)
			inside.Add(-1)
			unlock()
		})
	}
	wg.Wait()
	if max.Load() != 1 {
		t.Fatalf("%d holders at once", max.Load())
	}
	unlock, _ := Lock(context.Background(), dir)
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Lock(ctx, dir); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock: %v", err)
	}
	// The file lock itself excludes another holder (as another process
	// would be), not only the in-process semaphore.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := LockFile(ctx2, filepath.Join(dir, lockName)); err == nil {
		t.Fatal("lock file taken twice")
	}
}

// TestLocateOddPaths: a repository path ending in a space is found as it
// is; one holding a line break is refused in words.
func TestLocateOddPaths(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"ends in a space ", "line\nbreak"} {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := Run(ctx, time.Minute, dir, "init", "-q"); err != nil {
			t.Fatal(err)
		}
		r, err := Locate(ctx, time.Minute, dir)
		if strings.Contains(name, "\n") {
			if err == nil || !strings.Contains(err.Error(), "line break") {
				t.Errorf("Locate(%q) = %+v, %v; want a line break error", dir, r, err)
			}
			continue
		}
		if err != nil || r.TopLevel != dir {
			t.Errorf("Locate(%q) = %+v, %v", dir, r, err)
		}
	}
}
