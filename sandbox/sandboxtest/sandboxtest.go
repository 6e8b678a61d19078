// Package sandboxtest is the conformance suite every sandbox provider runs,
// in the manner of testing/fstest: one Run call checks that a Provider keeps
// every promise of the sandbox contract.
//
//	func TestConformance(t *testing.T) {
//		sandboxtest.Run(t, myprovider.New(myprovider.Config{...}))
//	}
//
// The suite needs a POSIX shell and the usual Linux userland in the sandbox
// (cat, wc, stat, find, readlink, mkdir, sleep, od).
//
// The ByteExact subtest is a property test: it sends random hostile strings
// (quotes, $(…), backticks, backslashes, newlines, glob characters, leading
// "-" and "~", %, non-ASCII and invalid UTF-8: any byte but NUL) as
// environment values, command arguments, command text, stdin and file
// names, and checks that the sandbox sees every byte as sent. Two
// environment variables steer it:
//
//	MOAT_PROPERTY_SEED=n  replays a run (the seed is logged, and shown on
//	                      failure); strings are drawn in order, so replay
//	                      with the same -run pattern
//	MOAT_PROPERTY_N=n     strings of each kind per run (default 6, well under
//	                      a second per sandbox; e.g. 300 for a long run)
package sandboxtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/sandbox"
)

// Options adjust the suite for a provider.
type Options struct {
	// NoSudo skips the Sudo check; set it to the reason the sandbox cannot
	// run commands as root. Prefer making Sudo work.
	NoSudo string
}

// Run runs the whole conformance suite against p.
func Run(t *testing.T, p sandbox.Provider) { RunWith(t, p, Options{}) }

// RunWith is Run with options.
func RunWith(t *testing.T, p sandbox.Provider, o Options) {
	t.Helper()
	ctx := t.Context()
	prop := NewProperty(t)
	env := map[string]string{
		"MOAT_SUITE_BASE":     "from create",
		"MOAT_SUITE_OVERRIDE": "from create",
	}
	// Hostile values for ByteExact, set at Create.
	createEnv := map[string]string{}
	for i := range prop.N {
		createEnv[fmt.Sprintf("MOAT_BX_C%d", i)] = prop.String()
	}
	maps.Copy(env, createEnv)
	h, err := p.Create(ctx, sandbox.CreateOptions{Env: env})
	if err != nil {
		t.Fatalf("%s: Create: %v", p.Name(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	s := &suite{h: h, prop: prop, createEnv: createEnv, sudo: o.NoSudo == ""}
	t.Run("WorkDir", s.testWorkDir)
	t.Run("ExitCodes", s.testExitCodes)
	t.Run("StdoutStderr", s.testStdoutStderr)
	t.Run("LiveLines", s.testLiveLines)
	t.Run("FinalLineWithoutNewline", s.testFinalLine)
	t.Run("Stdin", s.testStdin)
	t.Run("StdinUnread", s.testStdinUnread)
	t.Run("NoStdin", s.testNoStdin)
	t.Run("RawOutput", s.testRawOutput)
	t.Run("Env", s.testEnv)
	t.Run("EnvInvalidName", s.testEnvInvalidName)
	t.Run("CommandQuoting", s.testCommandQuoting)
	t.Run("Dir", s.testDir)
	t.Run("BoundedTail", s.testBoundedTail)
	t.Run("Sudo", func(t *testing.T) {
		if o.NoSudo != "" {
			t.Skip(o.NoSudo)
		}
		s.testSudo(t)
	})
	t.Run("CopyInFile", s.testCopyInFile)
	t.Run("CopyInDir", s.testCopyInDir)
	t.Run("CopyInMerge", s.testCopyInMerge)
	t.Run("CopyInThroughLink", s.testCopyInThroughLink)
	t.Run("CopyOut", s.testCopyOut)
	t.Run("CopyOutMissing", s.testCopyOutMissing)
	t.Run("Cancel", s.testCancel)
	t.Run("ExitGrace", s.testExitGrace)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("ByteExact", s.testByteExact)
	t.Run("Close", func(t *testing.T) { testClose(t, p) })
	t.Run("Describe", func(t *testing.T) { testDescribe(t, p) })
	t.Run("Leftovers", func(t *testing.T) { testLeftovers(t, p) })
	t.Run("Capabilities", func(t *testing.T) { testCapabilities(t, p) })
}

// testDescribe: a Describer's description is one printable line that
// starts with the provider's name.
func testDescribe(t *testing.T, p sandbox.Provider) {
	d, ok := p.(sandbox.Describer)
	if !ok {
		t.Skip("not a sandbox.Describer")
	}
	got := d.Describe()
	if !strings.HasPrefix(got, p.Name()) {
		t.Errorf("Describe() = %q: want it to start with Name() %q", got, p.Name())
	}
	for _, r := range got {
		if r < 0x20 || r == 0x7f {
			t.Errorf("Describe() = %q: want one printable line", got)
			break
		}
	}
}

type suite struct {
	h         sandbox.Handle
	prop      *Property
	createEnv map[string]string // hostile CreateOptions.Env values
	sudo      bool              // Sudo works
}

// exec runs cmd and fails the test on a transport error.
func (s *suite) exec(t *testing.T, cmd string, o sandbox.ExecOptions) sandbox.ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	r, err := s.h.Exec(ctx, cmd, o)
	if err != nil {
		t.Fatalf("Exec(%q): %v", cmd, err)
	}
	return r
}

// mustRun runs cmd and fails the test unless it exits 0.
func (s *suite) mustRun(t *testing.T, cmd string, o sandbox.ExecOptions) sandbox.ExecResult {
	t.Helper()
	r := s.exec(t, cmd, o)
	if r.ExitCode != 0 {
		t.Fatalf("Exec(%q): exit %d\nstdout: %s\nstderr: %s", cmd, r.ExitCode, r.Stdout, r.Stderr)
	}
	return r
}

// scratch returns a fresh directory name under WorkDir for one test.
func (s *suite) scratch(t *testing.T) string {
	t.Helper()
	dir := path.Join(s.h.WorkDir(), "suite-"+randHex(6))
	s.mustRun(t, `mkdir -p "$D"`, sandbox.ExecOptions{Env: map[string]string{"D": dir}})
	return dir
}

func (s *suite) testWorkDir(t *testing.T) {
	wd := s.h.WorkDir()
	if !path.IsAbs(wd) {
		t.Fatalf("WorkDir() = %q, want an absolute path", wd)
	}
	r := s.mustRun(t, "pwd -P; cd \"$PWD\" && test -w .", sandbox.ExecOptions{})
	got := strings.TrimSpace(r.Stdout)
	real := strings.TrimSpace(s.mustRun(t, `cd "$D" && pwd -P`, sandbox.ExecOptions{Env: map[string]string{"D": wd}}).Stdout)
	if got != real {
		t.Errorf("default directory is %q, want WorkDir %q", got, real)
	}
}

func (s *suite) testExitCodes(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		want int
	}{
		{"true", 0},
		{"false", 1},
		{"exit 42", 42},
		{"moat-no-such-command-xyz", 127},
		{"kill -9 $$", 137},
	} {
		r := s.exec(t, c.cmd, sandbox.ExecOptions{})
		if r.ExitCode != c.want {
			t.Errorf("Exec(%q).ExitCode = %d, want %d (stderr %q)", c.cmd, r.ExitCode, c.want, r.Stderr)
		}
	}
}

func (s *suite) testStdoutStderr(t *testing.T) {
	var out, errl []string
	r := s.mustRun(t, "echo out1; echo err1 >&2; echo out2; printf 'err2\\n' >&2", sandbox.ExecOptions{
		OnLine:       func(l string) { out = append(out, l) },
		OnStderrLine: func(l string) { errl = append(errl, l) },
	})
	if r.Stdout != "out1\nout2\n" || r.Stderr != "err1\nerr2\n" {
		t.Errorf("result stdout %q stderr %q, want %q and %q", r.Stdout, r.Stderr, "out1\nout2\n", "err1\nerr2\n")
	}
	if !slices.Equal(out, []string{"out1", "out2"}) || !slices.Equal(errl, []string{"err1", "err2"}) {
		t.Errorf("lines: stdout %q stderr %q", out, errl)
	}
}

// testLiveLines proves a line reaches OnLine while the command still runs:
// the command waits for a file that only the OnLine callback creates.
func (s *suite) testLiveLines(t *testing.T) {
	dir := s.scratch(t)
	release := path.Join(dir, "release")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var lines []string
	var once sync.Once
	var releaseErr error
	r, err := s.h.Exec(ctx, `echo first; i=0; while [ ! -e "$R" ]; do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.05; done; echo second`, sandbox.ExecOptions{
		Env: map[string]string{"R": release},
		OnLine: func(l string) {
			lines = append(lines, l)
			if l == "first" {
				once.Do(func() {
					_, releaseErr = s.h.Exec(ctx, `touch "$R"`, sandbox.ExecOptions{Env: map[string]string{"R": release}})
				})
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if releaseErr != nil {
		t.Fatalf("Exec from inside OnLine: %v", releaseErr)
	}
	if r.ExitCode == 9 {
		t.Fatal("the command finished its wait without release: OnLine was not called while it ran")
	}
	if r.ExitCode != 0 || !slices.Equal(lines, []string{"first", "second"}) {
		t.Fatalf("exit %d, lines %q; want 0 and [first second]", r.ExitCode, lines)
	}
}

func (s *suite) testFinalLine(t *testing.T) {
	var lines []string
	r := s.mustRun(t, `printf 'a\n\nb\r\nlast'`, sandbox.ExecOptions{OnLine: func(l string) { lines = append(lines, l) }})
	if want := []string{"a", "", "b", "last"}; !slices.Equal(lines, want) {
		t.Errorf("lines %q, want %q", lines, want)
	}
	if r.Stdout != "a\n\nb\r\nlast" {
		t.Errorf("Stdout %q, want the bytes as written", r.Stdout)
	}
}

func (s *suite) testStdin(t *testing.T) {
	dir := s.scratch(t)
	data := randBytes(t, 6<<20+123) // several MiB, every byte value
	r := s.mustRun(t, `cat > "$F"; wc -c < "$F"`, sandbox.ExecOptions{
		Env:   map[string]string{"F": path.Join(dir, "stdin.bin")},
		Stdin: bytes.NewReader(data),
	})
	if got := strings.TrimSpace(r.Stdout); got != strconv.Itoa(len(data)) {
		t.Fatalf("sandbox received %s bytes, want %d", got, len(data))
	}
	out := filepath.Join(t.TempDir(), "stdin.bin")
	if err := s.h.CopyOut(t.Context(), path.Join(dir, "stdin.bin"), out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("bytes read from stdin differ from the bytes sent")
	}
}

// testStdinUnread: a command that exits without reading a large stdin must
// neither hang nor fail.
func (s *suite) testStdinUnread(t *testing.T) {
	r := s.exec(t, "exit 3", sandbox.ExecOptions{Stdin: bytes.NewReader(make([]byte, 8<<20))})
	if r.ExitCode != 3 {
		t.Fatalf("exit %d, want 3", r.ExitCode)
	}
}

// testRawOutput: ExecOptions.Stdout and Stderr get the bytes exactly
// (binary, CR LF, no final newline), alongside the line callbacks.
func (s *suite) testRawOutput(t *testing.T) {
	data := randBytes(t, 1<<20+7)
	data = append(data, "\r\nend without newline"...)
	var stdout, stderr bytes.Buffer
	var lines int
	s.mustRun(t, `cat; printf 'err\r\n' >&2; printf 'tail' >&2`, sandbox.ExecOptions{
		Stdin:  bytes.NewReader(data),
		Stdout: &stdout, Stderr: &stderr,
		OnLine: func(string) { lines++ },
	})
	if !bytes.Equal(stdout.Bytes(), data) {
		t.Fatalf("Stdout got %d bytes that differ from the %d written", stdout.Len(), len(data))
	}
	if got := stderr.String(); got != "err\r\ntail" {
		t.Fatalf("Stderr got %q, want %q", got, "err\r\ntail")
	}
	if want := bytes.Count(data, []byte("\n")) + 1; lines != want {
		t.Fatalf("OnLine called %d times alongside Stdout, want %d", lines, want)
	}
}

func (s *suite) testNoStdin(t *testing.T) {
	r := s.mustRun(t, "cat; echo done", sandbox.ExecOptions{})
	if r.Stdout != "done\n" {
		t.Fatalf("stdout %q: a nil Stdin must read as empty", r.Stdout)
	}
}

// nastyValues are strings that break naive quoting.
var nastyValues = []string{
	"plain",
	"with spaces  and\ttab",
	"single ' quote",
	`double " quote`,
	"$(echo pwned)",
	"`echo pwned`",
	"${HOME} $HOME $$",
	"line1\nline2\n",
	"héllo wörld — 世界 🚀",
	`back\slash \\ \n`,
	"'\"'\"",
	"-n",
	"",
	";exit 1; &&|<>*?[a]~#!",
}

func (s *suite) testEnv(t *testing.T) {
	for i, v := range nastyValues {
		r := s.mustRun(t, `printf '%s' "$MOAT_V"`, sandbox.ExecOptions{Env: map[string]string{"MOAT_V": v}})
		if r.Stdout != v {
			t.Errorf("value %d: printed %q, want %q", i, r.Stdout, v)
		}
	}
	r := s.mustRun(t, `printf '%s|%s|%s' "$MOAT_SUITE_BASE" "$MOAT_SUITE_OVERRIDE" "$MOAT_X"`, sandbox.ExecOptions{
		Env: map[string]string{"MOAT_SUITE_OVERRIDE": "from exec", "MOAT_X": "x"},
	})
	if want := "from create|from exec|x"; r.Stdout != want {
		t.Errorf("CreateOptions.Env and ExecOptions.Env: got %q, want %q", r.Stdout, want)
	}
	if r := s.mustRun(t, `printf '%s' "$HOME"`, sandbox.ExecOptions{}); !path.IsAbs(r.Stdout) {
		t.Errorf("HOME = %q, want an absolute path", r.Stdout)
	}
}

func (s *suite) testEnvInvalidName(t *testing.T) {
	for _, k := range []string{"", "1X", "A-B", "A B", "A=B", "X;rm"} {
		_, err := s.h.Exec(t.Context(), "true", sandbox.ExecOptions{Env: map[string]string{k: "v"}})
		if err == nil {
			t.Errorf("Env key %q: Exec succeeded, want an error", k)
		}
	}
	_, err := s.h.Exec(t.Context(), "true", sandbox.ExecOptions{Env: map[string]string{"SECRETKEY": "hunter2-secret\x00"}})
	if err == nil {
		t.Error("Env value with NUL: Exec succeeded, want an error")
	} else if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q shows the value of an environment variable", err)
	}
}

func (s *suite) testCommandQuoting(t *testing.T) {
	cmds := map[string]string{
		`echo 'single' "double" \$HOME`:               "single double $HOME\n",
		"printf '%s\\n' \"héllo 世界\"":                 "héllo 世界\n",
		"echo a\necho b":                              "a\nb\n",
		"x=$(echo sub); echo \"$x\" `echo tick`":      "sub tick\n",
		`printf '%s' "it's"`:                          "it's",
		"set -- 'a b' c; echo $#":                     "2\n",
		"f() { echo \"fn $1\"; }; f 'x y'":            "fn x y\n",
		"cat <<'EOF'\n$NOT_EXPANDED 'q' \"d\"\nEOF\n": "$NOT_EXPANDED 'q' \"d\"\n",
		// A command starting with "-" is a command, not options of sh.
		"-moat-no-such-command 2>/dev/null; echo dash": "dash\n",
	}
	for cmd, want := range cmds {
		r := s.mustRun(t, cmd, sandbox.ExecOptions{})
		if r.Stdout != want {
			t.Errorf("Exec(%q) printed %q, want %q", cmd, r.Stdout, want)
		}
	}
}

func (s *suite) testDir(t *testing.T) {
	dir := s.scratch(t)
	for _, name := range []string{"plain", "with space", "quote'single", `quote"double`, "$(x)`y`", "nön-ascii 世界", "new\nline"} {
		abs := path.Join(dir, name)
		s.mustRun(t, `mkdir -p "$D"`, sandbox.ExecOptions{Env: map[string]string{"D": abs}})
		r := s.mustRun(t, `printf '%s' "$PWD"`, sandbox.ExecOptions{Dir: abs})
		if r.Stdout != abs {
			t.Errorf("Dir %q: PWD = %q", abs, r.Stdout)
		}
	}
	rel := strings.TrimPrefix(dir, s.h.WorkDir()+"/") + "/with space"
	if r := s.mustRun(t, `printf '%s' "$PWD"`, sandbox.ExecOptions{Dir: rel}); r.Stdout != path.Join(dir, "with space") {
		t.Errorf("relative Dir %q: PWD = %q, want it under WorkDir", rel, r.Stdout)
	}
	r := s.exec(t, "echo ran", sandbox.ExecOptions{Dir: path.Join(dir, "missing")})
	if r.ExitCode == 0 || strings.Contains(r.Stdout, "ran") {
		t.Errorf("missing Dir: exit %d stdout %q; want a failure without running the command", r.ExitCode, r.Stdout)
	}
}

func (s *suite) testBoundedTail(t *testing.T) {
	var n int
	var last string
	// 3 MiB per stream: more than TailBytes.
	r := s.mustRun(t, `i=0; while [ $i -lt 3072 ]; do printf '%01023d\n' $i; printf '%01023d\n' $i >&2; i=$((i+1)); done; echo END`, sandbox.ExecOptions{
		OnLine: func(l string) { n++; last = l },
	})
	if n != 3073 || last != "END" {
		t.Errorf("OnLine saw %d lines ending %q, want 3073 ending END", n, last)
	}
	if len(r.Stdout) > sandbox.TailBytes || len(r.Stderr) > sandbox.TailBytes {
		t.Errorf("kept %d/%d bytes, want at most TailBytes=%d", len(r.Stdout), len(r.Stderr), sandbox.TailBytes)
	}
	if !strings.HasSuffix(r.Stdout, fmt.Sprintf("%01023d\nEND\n", 3071)) {
		t.Errorf("Stdout does not keep the tail of the output")
	}
	if len(r.Stdout) < sandbox.TailBytes/2 {
		t.Errorf("kept only %d bytes of stdout", len(r.Stdout))
	}
}

func (s *suite) testSudo(t *testing.T) {
	r := s.mustRun(t, `id -u; printf '%s\n' "$MOAT_SUDO_V"`, sandbox.ExecOptions{Sudo: true, Env: map[string]string{"MOAT_SUDO_V": "kept it's"}})
	if r.Stdout != "0\nkept it's\n" {
		t.Errorf("Sudo: stdout %q, want uid 0 and the env value", r.Stdout)
	}
	if r := s.mustRun(t, "-moat-no-such-command 2>/dev/null; id -u", sandbox.ExecOptions{Sudo: true}); r.Stdout != "0\n" {
		t.Errorf("Sudo with a command starting with -: stdout %q, want 0", r.Stdout)
	}
}

// treeEntry is one entry of a directory tree as the suite compares it.
type treeEntry struct {
	Path, Kind, Mode, Target string
}

func (s *suite) listTree(t *testing.T, dir string) []treeEntry {
	t.Helper()
	// stat's %F differs between implementations; classify with test instead.
	r := s.mustRun(t, `cd "$D" && find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r p; do
  if [ -L "$p" ]; then printf 'link\t%s\t-\t%s\n' "$p" "$(readlink "$p")"
  elif [ -d "$p" ]; then printf 'dir\t%s\t%s\t-\n' "$p" "$(stat -c %a "$p")"
  else printf 'file\t%s\t%s\t-\n' "$p" "$(stat -c %a "$p")"; fi
done`, sandbox.ExecOptions{Env: map[string]string{"D": dir}})
	var out []treeEntry
	for _, line := range strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			t.Fatalf("bad listing line %q", line)
		}
		out = append(out, treeEntry{Kind: f[0], Path: strings.TrimPrefix(f[1], "./"), Mode: f[2], Target: f[3]})
	}
	return out
}

func hostTree(t *testing.T, dir string) []treeEntry {
	t.Helper()
	var out []treeEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		e := treeEntry{Path: filepath.ToSlash(rel), Mode: "-", Target: "-"}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			e.Kind = "link"
			e.Target, _ = os.Readlink(p)
		case d.IsDir():
			e.Kind, e.Mode = "dir", strconv.FormatUint(uint64(info.Mode().Perm()), 8)
		default:
			e.Kind, e.Mode = "file", strconv.FormatUint(uint64(info.Mode().Perm()), 8)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b treeEntry) int { return strings.Compare("./"+a.Path, "./"+b.Path) })
	return out
}

func (s *suite) testCopyInFile(t *testing.T) {
	dir := s.scratch(t)
	host := filepath.Join(t.TempDir(), "bin file")
	data := randBytes(t, 300_000)
	writeFile(t, host, data, 0o751)
	dst := path.Join(dir, "sub dir", "nested", "copied 'bin'")
	if err := s.h.CopyIn(t.Context(), host, dst); err != nil {
		t.Fatalf("CopyIn: %v", err)
	}
	r := s.mustRun(t, `stat -c %a "$F"; wc -c < "$F"`, sandbox.ExecOptions{Env: map[string]string{"F": dst}})
	if want := fmt.Sprintf("751\n%d\n", len(data)); strings.ReplaceAll(r.Stdout, " ", "") != want {
		t.Errorf("copied file: mode and size %q, want %q", r.Stdout, want)
	}
	s.assertSameFile(t, dst, data)

	// Replacing an existing file, and a relative destination.
	data2 := []byte("second version\n")
	writeFile(t, host, data2, 0o600)
	rel := strings.TrimPrefix(dst, s.h.WorkDir()+"/")
	if err := s.h.CopyIn(t.Context(), host, rel); err != nil {
		t.Fatalf("CopyIn over an existing file, relative path %q: %v", rel, err)
	}
	s.assertSameFile(t, dst, data2)
	if r := s.mustRun(t, `stat -c %a "$F"`, sandbox.ExecOptions{Env: map[string]string{"F": dst}}); strings.TrimSpace(r.Stdout) != "600" {
		t.Errorf("replaced file mode %q, want 600", r.Stdout)
	}

	if err := s.h.CopyIn(t.Context(), filepath.Join(t.TempDir(), "missing"), path.Join(dir, "x")); err == nil {
		t.Error("CopyIn of a missing host file succeeded")
	}
}

// assertSameFile copies a sandbox file out and compares it with want.
func (s *suite) assertSameFile(t *testing.T, sandboxPath string, want []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	if err := s.h.CopyOut(t.Context(), sandboxPath, out); err != nil {
		t.Fatalf("CopyOut(%q): %v", sandboxPath, err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes in the sandbox differ from the %d bytes expected", sandboxPath, len(got), len(want))
	}
}

func makeTree(t *testing.T) (string, map[string][]byte) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	files := map[string][]byte{
		"README.md":                   []byte("# hello\n"),
		"bin/run.sh":                  []byte("#!/bin/sh\necho run\n"),
		"data/blob.bin":               randBytes(t, 200_000),
		"dir with space/file 'q'.txt": []byte("quoted\n"),
		"ünï/世界.txt":                  []byte("unicode\n"),
		"deep/a/b/c/d/e.txt":          []byte("deep\n"),
		"private/secret.txt":          []byte("s\n"),
		"empty-file":                  nil,
	}
	modes := map[string]os.FileMode{"bin/run.sh": 0o755, "private/secret.txt": 0o600}
	for name, data := range files {
		m := modes[name]
		if m == 0 {
			m = 0o644
		}
		writeFile(t, filepath.Join(root, name), data, m)
	}
	for _, d := range []string{"empty dir", "deep/empty"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"link-to-readme":        "README.md",
		"bin/link up":           "../data/blob.bin",
		"dangling":              "does/not/exist",
		"dir with space/absdir": "/etc",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root, files
}

func (s *suite) testCopyInDir(t *testing.T) {
	root, files := makeTree(t)
	dst := path.Join(s.scratch(t), "copied tree")
	if err := s.h.CopyIn(t.Context(), root, dst); err != nil {
		t.Fatalf("CopyIn(dir): %v", err)
	}
	want, got := hostTree(t, root), s.listTree(t, dst)
	if !slices.Equal(got, want) {
		t.Errorf("tree in the sandbox differs from the host tree\n got: %v\nwant: %v", got, want)
	}
	for _, name := range []string{"data/blob.bin", "dir with space/file 'q'.txt", "ünï/世界.txt"} {
		s.assertSameFile(t, path.Join(dst, name), files[name])
	}
	if r := s.mustRun(t, `./bin/run.sh`, sandbox.ExecOptions{Dir: dst}); r.Stdout != "run\n" {
		t.Errorf("copied script printed %q", r.Stdout)
	}
}

func (s *suite) testCopyInMerge(t *testing.T) {
	dir := s.scratch(t)
	s.mustRun(t, `mkdir -p keep && echo old > keep/old.txt && echo stale > over.txt`, sandbox.ExecOptions{Dir: dir})
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "over.txt"), []byte("new\n"), 0o644)
	writeFile(t, filepath.Join(src, "keep", "added.txt"), []byte("added\n"), 0o644)
	if err := s.h.CopyIn(t.Context(), src, dir); err != nil {
		t.Fatal(err)
	}
	r := s.mustRun(t, `cat over.txt keep/old.txt keep/added.txt`, sandbox.ExecOptions{Dir: dir})
	if r.Stdout != "new\nold\nadded\n" {
		t.Errorf("after CopyIn into an existing directory: %q", r.Stdout)
	}
}

// testCopyInThroughLink: a host path that is a symbolic link means what it
// points to (links inside a tree stay links).
func (s *suite) testCopyInThroughLink(t *testing.T) {
	dir := s.scratch(t)
	host := t.TempDir()
	writeFile(t, filepath.Join(host, "real", "f.txt"), []byte("through a link\n"), 0o644)
	for link, target := range map[string]string{"file-link": "real/f.txt", "dir-link": "real"} {
		if err := os.Symlink(target, filepath.Join(host, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.h.CopyIn(t.Context(), filepath.Join(host, "file-link"), path.Join(dir, "f.txt")); err != nil {
		t.Fatalf("CopyIn of a link to a file: %v", err)
	}
	s.assertSameFile(t, path.Join(dir, "f.txt"), []byte("through a link\n"))
	if err := s.h.CopyIn(t.Context(), filepath.Join(host, "dir-link"), path.Join(dir, "d")); err != nil {
		t.Fatalf("CopyIn of a link to a directory: %v", err)
	}
	s.assertSameFile(t, path.Join(dir, "d", "f.txt"), []byte("through a link\n"))
}

func (s *suite) testCopyOut(t *testing.T) {
	dir := s.scratch(t)
	data := randBytes(t, 1<<20+7)
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, src, data, 0o644)
	sb := path.Join(dir, "out file ü.bin")
	if err := s.h.CopyIn(t.Context(), src, sb); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "new", "parents", "out.bin")
	if err := s.h.CopyOut(t.Context(), sb, dst); err != nil {
		t.Fatalf("CopyOut: %v", err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("CopyOut: bytes differ")
	}
	// Relative sandbox path, overwriting an existing host file.
	if err := s.h.CopyOut(t.Context(), strings.TrimPrefix(sb, s.h.WorkDir()+"/"), dst); err != nil {
		t.Fatalf("CopyOut relative: %v", err)
	}
}

func (s *suite) testCopyOutMissing(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "keep.txt")
	writeFile(t, dst, []byte("untouched"), 0o644)
	for _, src := range []string{path.Join(s.h.WorkDir(), "no-such-file"), s.h.WorkDir()} {
		if err := s.h.CopyOut(t.Context(), src, dst); err == nil {
			t.Errorf("CopyOut(%q) succeeded, want an error", src)
		}
		if got, _ := os.ReadFile(dst); string(got) != "untouched" {
			t.Errorf("failed CopyOut(%q) changed the host file to %q", src, got)
		}
	}
}

// testCancel proves that cancelling ctx kills the command in the sandbox, its
// children and its background jobs, not only the local wait: after cancel,
// heartbeat files written by each of them stop changing.
func (s *suite) testCancel(t *testing.T) {
	dir := s.scratch(t)
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := s.h.Exec(ctx, `(i=0; while :; do i=$((i+1)); echo $i > bg; sleep 0.1; done) &
sh -c 'i=0; while :; do i=$((i+1)); echo $i > child; sleep 0.1; done' &
echo started
i=0; while :; do i=$((i+1)); echo $i > fg; sleep 0.1; done; sleep 1000`, sandbox.ExecOptions{
			Dir:    dir,
			OnLine: func(string) { once.Do(func() { close(started) }) },
		})
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("command ended before it was cancelled: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("command did not start")
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Exec after cancel returned %v, want an error wrapping context.Canceled", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Exec did not return within 15s of cancel")
	}
	// The kill may land a moment after Exec returns on remote sandboxes.
	read := func() string {
		return s.mustRun(t, "cat fg bg child", sandbox.ExecOptions{Dir: dir}).Stdout
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := read()
		time.Sleep(600 * time.Millisecond)
		after := read()
		if before == after {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still run in the sandbox 10s after cancel (heartbeats %q -> %q)", before, after)
		}
	}
}

// testExitGrace: with ExitGrace, a command that exits while children it
// put in the background hold its output (and one that does not) ends
// with its own exit status shortly after its exit, not when the
// children end, and the children are gone by the time Exec returns.
func (s *suite) testExitGrace(t *testing.T) {
	dir := s.scratch(t)
	const grace = 500 * time.Millisecond
	start := time.Now()
	r, err := s.h.Exec(t.Context(), `echo started
(i=0; while :; do i=$((i+1)); echo $i > holds; sleep 0.1; done &)
(i=0; while :; do i=$((i+1)); echo $i > quiet; sleep 0.1; done >/dev/null 2>&1 </dev/null &)
(exec sleep 1000 &)
sleep 0.3
exit 3`, sandbox.ExecOptions{Dir: dir, ExitGrace: grace})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if r.ExitCode != 3 || r.Stdout != "started\n" {
		t.Errorf("exit %d, stdout %q; want 3, \"started\\n\"", r.ExitCode, r.Stdout)
	}
	// The command takes 0.3s, then the grace; the rest is round trips.
	if took > 20*time.Second {
		t.Errorf("Exec took %v: it waited for the background children", took)
	}
	t.Logf("took %v; stray: %q", took, r.Stray)
	for _, p := range r.Stray {
		if pid, _, _ := strings.Cut(p, " "); pid == "" || strings.Trim(pid, "0123456789") != "" {
			t.Errorf("stray %q does not start with a PID", p)
		}
	}
	// Nothing of the command's group runs on.
	read := func() string { return s.mustRun(t, "cat holds quiet", sandbox.ExecOptions{Dir: dir}).Stdout }
	before := read()
	time.Sleep(400 * time.Millisecond)
	if after := read(); before != after {
		t.Errorf("the command's background children still run after Exec returned (heartbeats %q -> %q)", before, after)
	}
	// A command whose output ends with it is not held up.
	start = time.Now()
	r, err = s.h.Exec(t.Context(), "echo quick", sandbox.ExecOptions{Dir: dir, ExitGrace: time.Minute})
	if err != nil || r.ExitCode != 0 || r.Stdout != "quick\n" || len(r.Stray) > 0 {
		t.Errorf("a plain command with ExitGrace: %+v %v", r, err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a plain command with ExitGrace took %v: it waited out the grace", took)
	}
}

// testConcurrent runs 20 commands that can only finish together: each
// waits until all 20 have started, so a handle that ran them one at a time
// fails.
func (s *suite) testConcurrent(t *testing.T) {
	const n = 20
	dir := s.scratch(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			var lines []string
			r, err := s.h.Exec(t.Context(), `echo "start $N"; touch "started-$N"
i=0; while [ "$(ls started-* | wc -l)" -lt "$TOTAL" ]; do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.05; done
echo "end $N"; echo "e $N" >&2`, sandbox.ExecOptions{
				Dir:    dir,
				Env:    map[string]string{"N": strconv.Itoa(i), "TOTAL": strconv.Itoa(n)},
				OnLine: func(l string) { lines = append(lines, l) },
			})
			switch {
			case err != nil:
				errs <- fmt.Errorf("exec %d: %w", i, err)
			case r.ExitCode == 9:
				errs <- fmt.Errorf("exec %d: the %d commands did not all run at once", i, n)
			case r.ExitCode != 0 || r.Stdout != fmt.Sprintf("start %d\nend %d\n", i, i) || r.Stderr != fmt.Sprintf("e %d\n", i):
				errs <- fmt.Errorf("exec %d: exit %d stdout %q stderr %q", i, r.ExitCode, r.Stdout, r.Stderr)
			case len(lines) != 2:
				errs <- fmt.Errorf("exec %d: lines %q", i, lines)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testClose(t *testing.T, p sandbox.Provider) {
	h, err := p.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wd := h.WorkDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if r, err := h.Exec(ctx, "echo alive", sandbox.ExecOptions{}); err != nil || r.Stdout != "alive\n" {
		t.Fatalf("fresh handle: %v %q", err, r.Stdout)
	}
	// Close with a command still running: it must not hang.
	running := make(chan error, 1)
	go func() {
		_, err := h.Exec(ctx, "sleep 1000", sandbox.ExecOptions{})
		running <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if err := h.Close(ctx); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-running:
		if err == nil {
			t.Error("an Exec running during Close returned no error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an Exec running during Close did not return within 30s")
	}
	if _, err := h.Exec(ctx, "true", sandbox.ExecOptions{}); !errors.Is(err, sandbox.ErrClosed) {
		t.Errorf("Exec after Close: %v, want an error wrapping sandbox.ErrClosed", err)
	}
	src := filepath.Join(t.TempDir(), "f")
	writeFile(t, src, []byte("x"), 0o644)
	if err := h.CopyIn(ctx, src, path.Join(wd, "f")); !errors.Is(err, sandbox.ErrClosed) {
		t.Errorf("CopyIn after Close: %v, want ErrClosed", err)
	}
	if err := h.CopyOut(ctx, path.Join(wd, "f"), filepath.Join(t.TempDir(), "g")); !errors.Is(err, sandbox.ErrClosed) {
		t.Errorf("CopyOut after Close: %v, want ErrClosed", err)
	}
	if h.WorkDir() != wd {
		t.Errorf("WorkDir changed after Close")
	}
}

func writeFile(t *testing.T, name string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
}

// randBytes returns n random bytes that include every byte value.
func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 256 && i < n; i++ {
		b[i] = byte(i)
	}
	return b
}

func randHex(n int) string {
	v, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(4*n)))
	return fmt.Sprintf("%0*x", n, v)
}

// Property makes the random hostile strings of a property test, from a
// seeded generator: a failure can be replayed with MOAT_PROPERTY_SEED. It
// is not safe for concurrent use.
type Property struct {
	Seed uint64
	N    int // strings of each kind to try (MOAT_PROPERTY_N, default 6)
	r    *mrand.Rand
}

// NewProperty reads MOAT_PROPERTY_SEED (default: a fresh random seed) and
// MOAT_PROPERTY_N, and logs the seed.
func NewProperty(t testing.TB) *Property {
	t.Helper()
	p := &Property{N: 6}
	if v := os.Getenv("MOAT_PROPERTY_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("MOAT_PROPERTY_N=%q: want a positive number", v)
		}
		p.N = n
	}
	if v := os.Getenv("MOAT_PROPERTY_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("MOAT_PROPERTY_SEED=%q: want a number", v)
		}
		p.Seed = seed
	} else {
		b, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
		p.Seed = b.Uint64()
	}
	p.r = mrand.New(mrand.NewPCG(p.Seed, p.Seed^0x6d6f6174))
	t.Logf("property seed %d (replay with MOAT_PROPERTY_SEED=%d MOAT_PROPERTY_N=%d)", p.Seed, p.Seed, p.N)
	return p
}

// Replay is the text to add to a failure message.
func (p *Property) Replay() string {
	return fmt.Sprintf("(replay with MOAT_PROPERTY_SEED=%d MOAT_PROPERTY_N=%d)", p.Seed, p.N)
}

// hostileAtoms are the pieces strings are made of: what shells, printf,
// terminals, SSH and UTF-8 decoders treat specially.
var hostileAtoms = []string{
	"'", `"`, "$(", ")", "`", `\`, "\n", "\t", "\r", "\r\n", " ", "  ",
	"*", "?", "[", "]", "[!a]", "{", "}", "{a,b}", "~", "%", "%s", "%n", "%%", "%d",
	"$", "$HOME", "${X}", "$1", "$$", "$'", "$@", "!", "#", ";", "&", "&&", "|", "<", ">", "=",
	`'\''`, `\n`, `\'`, `\\`, "EOF", "~.", "\n~.\n", "-", "--", "-n", "-e", "() {", "\\x41",
	"é", "世界", "🚀", "\u202e", "\ufeff", "\u2028", "e\u0301", "\u00a0", "\U0010ffff",
	"\xff", "\xfe", "\xc0\x80", "\xed\xa0\x80", "\x80", "\xe4\xb8", "\xf4\x90\x80\x80",
	"\x01", "\x03", "\x04", "\x1b[31m", "\x7f", "\x0b\x0c",
	"a", "word", "x y", "0", "/", "./", "../",
}

// leadAtoms may start a string: what changes the meaning of a first
// character (an option, a home directory, a comment, a function export).
var leadAtoms = []string{"-", "--", "-rf ", "~", "~root/", "#", "=", " ", "() { :; }; ", "+", "!"}

// String returns a random hostile string: any bytes but NUL, sometimes
// empty, often not UTF-8.
func (p *Property) String() string {
	var b strings.Builder
	if p.r.IntN(3) == 0 {
		b.WriteString(leadAtoms[p.r.IntN(len(leadAtoms))])
	}
	for range p.r.IntN(12) {
		if p.r.IntN(6) == 0 {
			b.WriteByte(byte(1 + p.r.IntN(255))) // any byte but NUL
		} else {
			b.WriteString(hostileAtoms[p.r.IntN(len(hostileAtoms))])
		}
	}
	return b.String()
}

// Name returns a random hostile file name: a String without "/" (and NUL),
// never empty, "." or "..", at most 200 bytes.
func (p *Property) Name() string {
	n := strings.ReplaceAll(p.String(), "/", "")
	if len(n) > 200 {
		n = n[:200]
	}
	if n == "" || n == "." || n == ".." || p.r.IntN(4) == 0 {
		n += leadAtoms[p.r.IntN(len(leadAtoms))] + "n" // "/"-free and never "." or ".."
		n = strings.ReplaceAll(n, "/", "")
	}
	return n
}

// Bytes returns random data for stdin and file contents: hostile strings,
// NUL bytes included, sometimes empty, sometimes without a final newline.
func (p *Property) Bytes() []byte {
	var b []byte
	for range p.r.IntN(4) {
		b = append(b, p.String()...)
		if p.r.IntN(3) == 0 {
			b = append(b, 0)
		}
	}
	return b
}

// hexLines parses the output of `od -An -v -tx1` runs separated by lines
// holding ".", into the bytes each dumped.
func hexLines(t *testing.T, out string) [][]byte {
	t.Helper()
	var got [][]byte
	for _, part := range strings.Split(out, ".\n") {
		hexText := strings.Join(strings.Fields(part), "")
		b, err := hex.DecodeString(hexText)
		if err != nil {
			t.Fatalf("od printed %q: %v", part, err)
		}
		got = append(got, b)
	}
	return got[:len(got)-1] // after the last "."
}

// dump is shell text that writes the bytes of the word w (e.g. "$VAR") as
// hex, then a line holding ".".
func dump(w string) string { return "printf '%s' " + w + " | od -An -v -tx1; echo .\n" }

// testByteExact: hostile strings arrive byte for byte, whatever the way in.
func (s *suite) testByteExact(t *testing.T) {
	p := s.prop
	t.Run("Env", func(t *testing.T) {
		// CreateOptions.Env (set in RunWith) and ExecOptions.Env, one
		// overriding the other.
		execEnv := map[string]string{}
		for i := range p.N {
			execEnv[fmt.Sprintf("MOAT_BX_E%d", i)] = p.String()
		}
		execEnv["MOAT_BX_C0"] = p.String()
		// Names sudo filters by default: "/" or "%" in TZ, PYTHONPATH at all.
		execEnv["TZ"] = "Europe/Paris%" + p.String()
		execEnv["PYTHONPATH"] = "/moat/" + p.String()
		want := map[string]string{}
		maps.Copy(want, s.createEnv)
		maps.Copy(want, execEnv)
		keys := slices.Sorted(maps.Keys(want))
		var cmd strings.Builder
		for _, k := range keys {
			cmd.WriteString(dump(`"$` + k + `"`))
		}
		modes := []bool{false}
		if s.sudo {
			modes = append(modes, true)
		}
		for _, sudo := range modes {
			r := s.mustRun(t, cmd.String(), sandbox.ExecOptions{Env: execEnv, Sudo: sudo})
			got := hexLines(t, r.Stdout)
			if len(got) != len(keys) {
				t.Fatalf("sudo=%v: %d values dumped, want %d %s", sudo, len(got), len(keys), p.Replay())
			}
			for i, k := range keys {
				if string(got[i]) != want[k] {
					t.Errorf("sudo=%v: $%s arrived as %q, want %q %s", sudo, k, got[i], want[k], p.Replay())
				}
			}
		}
	})
	t.Run("Args", func(t *testing.T) {
		// Arguments quoted with shell.Quote, as moat quotes them.
		args := make([]string, p.N)
		var cmd strings.Builder
		cmd.WriteString("set --")
		for i := range args {
			args[i] = p.String()
			cmd.WriteString(" " + shell.Quote(args[i]))
		}
		cmd.WriteString("\nfor a do\n" + dump(`"$a"`) + "done\n")
		got := hexLines(t, s.mustRun(t, cmd.String(), sandbox.ExecOptions{}).Stdout)
		if len(got) != len(args) {
			t.Fatalf("%d arguments arrived, want %d %s", len(got), len(args), p.Replay())
		}
		for i := range args {
			if string(got[i]) != args[i] {
				t.Errorf("argument %d arrived as %q, want %q %s", i, got[i], args[i], p.Replay())
			}
		}
	})
	t.Run("CommandText", func(t *testing.T) {
		// The command text itself: a here-document with a quoted delimiter
		// is copied as written.
		for range p.N {
			body := p.String()
			if strings.Contains(body, "MOAT_BX_END") {
				continue
			}
			r := s.mustRun(t, "od -An -v -tx1 <<'MOAT_BX_END'\n"+body+"\nMOAT_BX_END\necho .\n", sandbox.ExecOptions{})
			if got := hexLines(t, r.Stdout); len(got) != 1 || string(got[0]) != body+"\n" {
				t.Errorf("here-document %q arrived as %q %s", body+"\n", got, p.Replay())
			}
		}
	})
	t.Run("Stdin", func(t *testing.T) {
		for range p.N {
			data := p.Bytes()
			r := s.mustRun(t, "od -An -v -tx1; echo .", sandbox.ExecOptions{Stdin: bytes.NewReader(data)})
			if got := hexLines(t, r.Stdout); len(got) != 1 || !bytes.Equal(got[0], data) {
				t.Errorf("stdin %q arrived as %q %s", data, got, p.Replay())
			}
		}
	})
	t.Run("Names", s.testHostileNames)
}

// testHostileNames: files and directories with hostile names go in and out
// with their names and bytes intact.
func (s *suite) testHostileNames(t *testing.T) {
	p := s.prop
	dir := s.scratch(t)
	rel := strings.TrimPrefix(dir, s.h.WorkDir()+"/")
	host := t.TempDir()
	want := map[string][]byte{} // sandbox path under dir → contents; nil for a directory
	addDirs := func(name string) {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			want[d] = nil
		}
	}
	for i := range p.N + 1 {
		// A file, to an absolute or a relative destination in a new
		// directory. The last has fixed names: backslash escapes in a
		// directory name, which GNU tar's -C would decode.
		name, sub := p.Name(), p.Name()
		if i == p.N {
			name, sub = `-n ~ 'q' "d" $(id) `+"`id`"+` * \t`, `dir \\ \n \101 \x41 \`
		}
		data := p.Bytes()
		src := filepath.Join(host, fmt.Sprintf("f%d", i), name)
		writeFile(t, src, data, 0o644)
		dst := path.Join(dir, fmt.Sprintf("f%d", i), sub, name)
		if i%2 == 1 {
			dst = path.Join(rel, fmt.Sprintf("f%d", i), sub, name)
		}
		if err := s.h.CopyIn(t.Context(), src, dst); err != nil {
			t.Fatalf("CopyIn(%q, %q): %v %s", src, dst, err, p.Replay())
		}
		key := path.Join(fmt.Sprintf("f%d", i), sub, name)
		want[key] = data
		addDirs(key)

		// A directory tree: hostile names at two levels.
		tree := filepath.Join(host, fmt.Sprintf("d%d", i), p.Name())
		inner, leaf := p.Name(), p.Name()
		treeData := p.Bytes()
		writeFile(t, filepath.Join(tree, inner, leaf), treeData, 0o644)
		dstTree := path.Join(dir, fmt.Sprintf("d%d", i), filepath.Base(tree))
		if err := s.h.CopyIn(t.Context(), tree, dstTree); err != nil {
			t.Fatalf("CopyIn(%q, %q): %v %s", tree, dstTree, err, p.Replay())
		}
		key = path.Join(fmt.Sprintf("d%d", i), filepath.Base(tree), inner, leaf)
		want[key] = treeData
		addDirs(key)
	}

	// The sandbox sees exactly these names.
	r := s.mustRun(t, `cd "$D" && find . -mindepth 1 -print0 | od -An -v -tx1; echo .`, sandbox.ExecOptions{Env: map[string]string{"D": dir}})
	listing := hexLines(t, r.Stdout)
	if len(listing) != 1 {
		t.Fatalf("find printed %q", r.Stdout)
	}
	var got []string
	for _, n := range strings.Split(strings.TrimSuffix(string(listing[0]), "\x00"), "\x00") {
		got = append(got, strings.TrimPrefix(n, "./"))
	}
	slices.Sort(got)
	if wantNames := slices.Sorted(maps.Keys(want)); !slices.Equal(got, wantNames) {
		t.Fatalf("names in the sandbox:\n got %q\nwant %q\n%s", got, wantNames, p.Replay())
	}

	// Each file comes back out, byte for byte, to a host file with a
	// hostile name.
	out := t.TempDir()
	for i, key := range slices.Sorted(maps.Keys(want)) {
		data := want[key]
		if data == nil {
			continue
		}
		hostName := filepath.Join(out, fmt.Sprintf("o%d", i), p.Name())
		if err := s.h.CopyOut(t.Context(), path.Join(dir, key), hostName); err != nil {
			t.Fatalf("CopyOut(%q, %q): %v %s", path.Join(dir, key), hostName, err, p.Replay())
		}
		b, err := os.ReadFile(hostName)
		if err != nil {
			t.Fatalf("after CopyOut to %q: %v %s", hostName, err, p.Replay())
		}
		if !bytes.Equal(b, data) {
			t.Errorf("%q came out as %q, want %q %s", key, b, data, p.Replay())
		}
	}
}
