package hostgit

// Hostile repository configuration: a repository's own .git/config (and
// hooks directory, and the files it includes) can make git run programs.
// Each case below sets one such program up in a fresh repository, runs a
// git command that would start it through Cmd.Run (it must not start), then
// runs the same command with plain git (it must start: the case is real,
// so the first check can fail). Every program writes a marker file outside
// the repository when it runs.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/worktree/hostgit/hostgittest"
)

// hostile is one repository with a program it configures.
type hostile struct {
	t       *testing.T
	repo    string // the main working tree
	markers string // where programs leave a file named after themselves
	tools   string // the programs
}

func newHostile(t *testing.T) *hostile {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{t: t, repo: filepath.Join(base, "repo"), markers: filepath.Join(base, "markers"), tools: filepath.Join(base, "tools")}
	for _, d := range []string{h.repo, h.markers, h.tools} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.raw("init", "-q", "-b", "main")
	h.raw("config", "user.name", "U")
	h.raw("config", "user.email", "u@example.com")
	h.write("f.txt", "1\n2\n3\n4\n5\n6\n7\n")
	h.raw("add", ".")
	h.raw("commit", "-q", "-m", "initial")
	return h
}

// prog writes a program that records that it ran, then does what tail says.
func (h *hostile) prog(name, tail string) string {
	h.t.Helper()
	p := filepath.Join(h.tools, name)
	script := "#!/bin/sh\necho \"$0 $*\" >> '" + filepath.Join(h.markers, name) + "'\n" + tail + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// hooks fills dir with every hook, each leaving marker prefix+name.
func (h *hostile) hooks(dir, prefix string) {
	h.t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	for _, n := range hostgittest.HookNames {
		src := h.prog(prefix+n, "exit 0")
		data, _ := os.ReadFile(src)
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o755); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *hostile) write(name, content string) {
	h.t.Helper()
	p := filepath.Join(h.repo, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// raw runs plain git, as a user would, and fails the test on error.
func (h *hostile) raw(args ...string) string {
	h.t.Helper()
	out, err := rawGit(h.repo, nil, args...)
	if err != nil {
		h.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func rawGit(dir string, stdin *string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	if stdin != nil {
		cmd.Stdin = strings.NewReader(*stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// fired lists the markers present, and removes them.
func (h *hostile) fired() []string {
	h.t.Helper()
	es, err := os.ReadDir(h.markers)
	if err != nil {
		h.t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
		os.Remove(filepath.Join(h.markers, e.Name()))
	}
	return names
}

// runner runs one git command in dir, with stdin when not nil.
type runner func(dir string, stdin *string, args ...string) (string, error)

func hardened(dir string, stdin *string, args ...string) (string, error) {
	c := Cmd{Dir: dir, Args: args, Timeout: 20 * time.Second}
	if stdin != nil {
		c.Stdin = strings.NewReader(*stdin)
	}
	return c.Run(context.Background())
}

func TestRepositoryConfiguredProgramsDoNotRun(t *testing.T) {
	type tc struct {
		name    string
		setup   func(h *hostile)
		trigger func(h *hostile, run runner) // the git command(s) that would start the program
	}
	commit := func(h *hostile, run runner) {
		h.write("c.txt", time.Now().String())
		run(h.repo, nil, "add", "c.txt")
		run(h.repo, nil, "commit", "-q", "-m", "c")
	}
	// mergeBothSides makes main and side change a new file apart, then
	// merges side into main; every step goes through run, so plain git
	// starts hooks all along, and hostgit none.
	merges := 0
	mergeBothSides := func(h *hostile, run runner) {
		merges++
		name := fmt.Sprintf("m%d.txt", merges)
		run(h.repo, nil, "checkout", "-q", "main")
		h.write(name, "1\n2\n3\n4\n5\n6\n7\n")
		run(h.repo, nil, "add", name)
		run(h.repo, nil, "commit", "-q", "-m", "base "+name)
		run(h.repo, nil, "checkout", "-q", "-B", "side", "main")
		h.write(name, "1\n2\n3\n4\n5\n6\nSEVEN\n")
		run(h.repo, nil, "commit", "-q", "-am", "side "+name)
		run(h.repo, nil, "checkout", "-q", "main")
		h.write(name, "ONE\n2\n3\n4\n5\n6\n7\n")
		run(h.repo, nil, "commit", "-q", "-am", "main "+name)
		if out, err := run(h.repo, nil, "merge", "--no-edit", "side"); err != nil {
			h.t.Logf("merge: %v\n%s", err, out)
		}
	}
	cases := []tc{
		{"hooks directory", func(h *hostile) { h.hooks(filepath.Join(h.repo, ".git", "hooks"), "hook-") },
			func(h *hostile, run runner) {
				commit(h, run)
				mergeBothSides(h, run)
				patch, _ := run(h.repo, nil, "format-patch", "--stdout", "-1", "HEAD^2")
				run(h.repo, nil, "reset", "-q", "--hard", "HEAD^1")
				run(h.repo, &patch, "am", "-3")
				run(h.repo, nil, "worktree", "add", "-q", "--detach", filepath.Join(h.tools, "wt"+time.Now().Format("150405.000000")))
				run(h.repo, nil, "checkout", "-q", "-b", "x"+time.Now().Format("150405.000000"))
			}},
		{"core.hooksPath", func(h *hostile) {
			dir := filepath.Join(h.tools, "hookspath")
			h.hooks(dir, "hookspath-")
			h.raw("config", "core.hooksPath", dir)
		}, commit},
		{"core.fsmonitor", func(h *hostile) { h.raw("config", "core.fsmonitor", h.prog("fsmonitor", "exit 1")) },
			func(h *hostile, run runner) { run(h.repo, nil, "status", "--porcelain") }},
		{"gpg.program signing", func(h *hostile) {
			h.raw("config", "gpg.program", h.prog("gpg", "exit 1"))
			h.raw("config", "commit.gpgSign", "true")
		}, commit},
		{"gpg.program verifying", func(h *hostile) {
			h.raw("config", "gpg.program", h.prog("gpg", "exit 1"))
			obj := h.raw("cat-file", "commit", "HEAD")
			head, body, _ := strings.Cut(obj, "\n\n")
			signed := head + "\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEE\n -----END PGP SIGNATURE-----\n\n" + body
			sha := strings.TrimSpace(mustRaw(h, &signed, "hash-object", "-t", "commit", "-w", "--stdin"))
			h.raw("update-ref", "refs/heads/signed", sha)
		}, func(h *hostile, run runner) { run(h.repo, nil, "log", "-1", "--format=%G?", "signed") }},
		{"diff.external", func(h *hostile) { h.raw("config", "diff.external", h.prog("extdiff", "exit 0")) },
			func(h *hostile, run runner) { h.write("f.txt", "changed\n"); run(h.repo, nil, "diff") }},
		{"diff driver command", func(h *hostile) {
			h.write(".gitattributes", "*.txt diff=x\n")
			h.raw("config", "diff.x.command", h.prog("diffcmd", "exit 0"))
		}, func(h *hostile, run runner) { h.write("f.txt", "changed\n"); run(h.repo, nil, "diff") }},
		{"diff driver textconv", func(h *hostile) {
			h.write(".gitattributes", "*.txt diff=x\n")
			h.raw("add", ".gitattributes")
			h.raw("commit", "-q", "-m", "attributes")
			h.raw("config", "diff.x.textconv", h.prog("textconv", `cat "$1"`))
		}, func(h *hostile, run runner) {
			h.write("f.txt", "changed "+time.Now().String()+"\n")
			run(h.repo, nil, "commit", "-q", "-am", "change")
			run(h.repo, nil, "log", "-p", "-1")
		}},
		{"clean and smudge filters", func(h *hostile) {
			h.write(".gitattributes", "*.txt filter=x\n")
			h.raw("config", "filter.x.clean", h.prog("clean", "cat"))
			h.raw("config", "filter.x.smudge", h.prog("smudge", "cat"))
			h.raw("config", "filter.x.required", "true")
		}, func(h *hostile, run runner) {
			h.write("f.txt", "changed\n")
			run(h.repo, nil, "status", "--porcelain")
			run(h.repo, nil, "checkout", "--", "f.txt")
		}},
		{"process filter", func(h *hostile) {
			h.write(".gitattributes", "*.txt filter=x\n")
			h.raw("config", "filter.x.process", h.prog("process", "exit 1"))
		}, func(h *hostile, run runner) {
			h.write("f.txt", "changed\n")
			run(h.repo, nil, "add", "f.txt")
			run(h.repo, nil, "checkout", "HEAD", "--", "f.txt")
		}},
		{"merge driver", func(h *hostile) {
			h.write(".gitattributes", "*.txt merge=x\n")
			h.raw("add", ".gitattributes")
			h.raw("commit", "-q", "-m", "attributes")
			h.raw("config", "merge.x.driver", h.prog("mergedriver", "exit 1")+" %O %A %B")
		}, mergeBothSides},
		{"merge driver as merge.default", func(h *hostile) {
			h.raw("config", "merge.default", "x")
			h.raw("config", "merge.x.driver", h.prog("mergedefault", "exit 1")+" %O %A %B")
		}, mergeBothSides},
		{"core.editor", func(h *hostile) { h.raw("config", "core.editor", h.prog("editor", "exit 1")) },
			func(h *hostile, run runner) {
				h.write("e.txt", "e")
				run(h.repo, nil, "add", "e.txt")
				run(h.repo, nil, "commit")
			}},
		{"sequence.editor", func(h *hostile) { h.raw("config", "sequence.editor", h.prog("seqeditor", "exit 1")) },
			func(h *hostile, run runner) { run(h.repo, nil, "rebase", "-i", "HEAD") }},
		{"core.sshCommand", func(h *hostile) { h.raw("config", "core.sshCommand", h.prog("ssh", "exit 1")) },
			func(h *hostile, run runner) { run(h.repo, nil, "ls-remote", "ssh://host.invalid/x") }},
		{"core.gitProxy", func(h *hostile) { h.raw("config", "core.gitProxy", h.prog("gitproxy", "exit 1")) },
			func(h *hostile, run runner) { run(h.repo, nil, "ls-remote", "git://host.invalid/x") }},
		{"credential.helper and core.askPass", func(h *hostile) {
			h.raw("config", "credential.helper", h.prog("credhelper", "exit 0"))
			h.raw("config", "credential.https://example.com.helper", h.prog("credurlhelper", "exit 0"))
			h.raw("config", "core.askPass", h.prog("askpass", "exit 1"))
		}, func(h *hostile, run runner) {
			in := "protocol=https\nhost=example.com\n\n"
			run(h.repo, &in, "credential", "fill")
		}},
		{"remote uploadpack in a partial clone", func(h *hostile) {
			other := filepath.Join(h.tools, "other")
			if _, err := rawGit(h.tools, nil, "init", "-q", other); err != nil {
				h.t.Fatal(err)
			}
			h.raw("remote", "add", "origin", other)
			h.raw("config", "core.repositoryFormatVersion", "1")
			h.raw("config", "extensions.partialClone", "origin")
			h.raw("config", "remote.origin.promisor", "true")
			h.raw("config", "remote.origin.uploadpack", h.prog("uploadpack", "exit 1"))
		}, func(h *hostile, run runner) {
			_, err := run(h.repo, nil, "ls-remote", "origin")
			var ge *Error
			if errors.As(err, &ge) && !strings.Contains(err.Error(), "remote.origin.uploadpack") {
				h.t.Errorf("hostgit's refusal does not name the setting: %v", err)
			}
		}},
		{"core.alternateRefsCommand", func(h *hostile) {
			other := filepath.Join(h.tools, "other")
			if _, err := rawGit(h.tools, nil, "init", "-q", other); err != nil {
				h.t.Fatal(err)
			}
			os.WriteFile(filepath.Join(h.repo, ".git", "objects", "info", "alternates"), []byte(filepath.Join(other, ".git", "objects")+"\n"), 0o644)
			h.raw("config", "core.alternateRefsCommand", h.prog("altrefs", "exit 0"))
		}, func(h *hostile, run runner) { run(h.repo, nil, "rev-list", "--alternate-refs", "HEAD") }},
		{"filter in an included file", func(h *hostile) {
			inc := filepath.Join(h.tools, "included.cfg")
			os.WriteFile(inc, []byte("[filter \"x\"]\n\tclean = "+h.prog("inclclean", "cat")+"\n"), 0o644)
			h.write(".gitattributes", "*.txt filter=x\n")
			h.raw("config", "include.path", inc)
		}, func(h *hostile, run runner) { h.write("f.txt", "changed\n"); run(h.repo, nil, "add", "f.txt") }},
		{"upper-case names", func(h *hostile) {
			cfg := filepath.Join(h.repo, ".git", "config")
			data, _ := os.ReadFile(cfg)
			data = append(data, []byte("[FILTER \"x\"]\n\tCLEAN = "+h.prog("upperclean", "cat")+"\n")...)
			os.WriteFile(cfg, data, 0o644)
			h.write(".gitattributes", "*.txt filter=x\n")
		}, func(h *hostile, run runner) { h.write("f.txt", "changed\n"); run(h.repo, nil, "add", "f.txt") }},
		{"linked worktree with config.worktree", func(h *hostile) {
			h.write(".gitattributes", "*.txt filter=x\n")
			h.raw("add", ".gitattributes")
			h.raw("commit", "-q", "-m", "attributes")
			wt := filepath.Join(h.tools, "linked")
			h.raw("worktree", "add", "-q", wt)
			h.raw("config", "extensions.worktreeConfig", "true")
			if _, err := rawGit(wt, nil, "config", "--worktree", "filter.x.smudge", h.prog("wtsmudge", "cat")); err != nil {
				h.t.Fatal(err)
			}
		}, func(h *hostile, run runner) {
			wt := filepath.Join(h.tools, "linked")
			os.Remove(filepath.Join(wt, "f.txt"))
			run(wt, nil, "checkout", "--", "f.txt")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHostile(t)
			c.setup(h)
			h.fired() // setting up ran some of them
			c.trigger(h, hardened)
			if got := h.fired(); len(got) > 0 {
				t.Errorf("programs the repository configures ran under hostgit: %v", got)
			}
			c.trigger(h, rawGit)
			if got := h.fired(); len(got) == 0 {
				t.Errorf("plain git ran none of the programs: the case tests nothing")
			} else {
				t.Logf("plain git ran: %v", got)
			}
		})
	}
}

func mustRaw(h *hostile, stdin *string, args ...string) string {
	h.t.Helper()
	out, err := rawGit(h.repo, stdin, args...)
	if err != nil {
		h.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestGlobalProgramsKept: what the user configured globally (git-lfs
// style filters, credential helpers) still runs; the same names set by the
// repository are overridden with the global values, and the exact git-lfs
// commands are kept even from the repository.
func TestGlobalProgramsKept(t *testing.T) {
	h := newHostile(t)
	global := filepath.Join(h.tools, "global.cfg")
	// A global filter that upper-cases on checkout; the repository tries to
	// replace its smudge command and to add a helper.
	os.WriteFile(global, []byte("[filter \"up\"]\n\tsmudge = tr a-z A-Z\n\tclean = cat\n"+
		"[credential]\n\thelper = \"!f() { echo username=global-user; echo password=global-pw; }; f\"\n"), 0o644)
	h.write(".gitattributes", "*.up filter=up\n")
	h.write("a.up", "hello\n")
	h.raw("add", ".")
	h.raw("commit", "-q", "-m", "up")
	h.raw("config", "filter.up.smudge", h.prog("localsmudge", "cat"))
	h.raw("config", "credential.helper", h.prog("localhelper", "echo username=local-user; echo password=local-pw"))
	h.raw("config", "filter.lfs.process", "git-lfs filter-process")
	h.raw("config", "filter.lfs.smudge", "not-git-lfs smudge -- %f")
	env := []string{"GIT_CONFIG_GLOBAL=" + global}

	os.Remove(filepath.Join(h.repo, "a.up"))
	if _, err := (Cmd{Dir: h.repo, Env: env, Args: []string{"checkout", "--", "a.up"}}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(h.repo, "a.up")); string(data) != "HELLO\n" {
		t.Errorf("the global smudge filter did not run: a.up = %q", data)
	}
	out, err := Cmd{Dir: h.repo, Env: env, Args: []string{"credential", "fill"}, Stdin: strings.NewReader("protocol=https\nhost=example.com\n\n")}.Run(context.Background())
	if err != nil || !strings.Contains(out, "username=global-user") {
		t.Errorf("credential fill = %q, %v; want the global helper's answer", out, err)
	}
	for key, want := range map[string]string{
		"filter.lfs.process": "git-lfs filter-process", // what git lfs install --local writes
		"filter.lfs.smudge":  "",                       // not that
		"filter.up.smudge":   "tr a-z A-Z",
	} {
		got, err := Cmd{Dir: h.repo, Env: env, Args: []string{"config", "--get", key}}.Run(context.Background())
		if strings.TrimSpace(got) != want || err != nil && want != "" {
			t.Errorf("%s = %q (%v), want %q", key, got, err, want)
		}
	}
	if got := h.fired(); len(got) > 0 {
		t.Errorf("repository programs ran: %v", got)
	}
}

// TestOverrideValues: each setting the repository makes is replaced, as git
// itself reports it, also for the ones this git cannot exercise
// (hook.<x>.command is git 2.54+, git-lfs is not installed).
func TestOverrideValues(t *testing.T) {
	h := newHostile(t)
	want := map[string]string{
		"hook.lint.command":           "true",
		"lfs.customtransfer.x.path":   "",
		"lfs.extension.x.clean":       "",
		"merge.x.driver":              mergeFileDriver,
		"diff.x.textconv":             "cat",
		"diff.x.command":              "true",
		"core.sshCommand":             "ssh",
		"gpg.ssh.program":             "ssh-keygen",
		"gpg.x509.program":            "gpgsm",
		"filter.Mixed.Case.process":   "",
		"filter.Mixed.Case.required":  "false",
		"core.alternateRefsCommand":   "true",
		"credential.https://a.helper": "",
	}
	for k := range want {
		if strings.HasSuffix(k, ".required") {
			h.raw("config", k, "true")
			continue
		}
		h.raw("config", k, "/evil/"+k)
	}
	for k, v := range want {
		out, err := Run(context.Background(), time.Minute, h.repo, "config", "--get", k)
		got := strings.TrimSpace(out)
		if k == "credential.https://a.helper" { // the reset comes later than the repository's value
			out, _ = Run(context.Background(), time.Minute, h.repo, "config", "--get-all", "credential.helper")
			if !strings.HasSuffix(out, "\n\n") && out != "\n" {
				t.Errorf("credential helpers not reset: %q", out)
			}
			continue
		}
		if got != v || err != nil && v != "" {
			t.Errorf("%s = %q (%v), want %q", k, got, err, v)
		}
	}
}

// TestUnoverridableNameRefused: "-c" cannot name a subsection with "=" in
// it, so such a setting makes the command fail instead of running it.
func TestUnoverridableNameRefused(t *testing.T) {
	h := newHostile(t)
	cfg := filepath.Join(h.repo, ".git", "config")
	data, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(data, []byte("[filter \"a=b\"]\n\tclean = "+h.prog("eqclean", "cat")+"\n")...), 0o644)
	h.write(".gitattributes", "*.txt filter=a=b\n")
	h.write("f.txt", "changed\n")
	_, err := Run(context.Background(), time.Minute, h.repo, "add", "f.txt")
	if err == nil || !strings.Contains(err.Error(), "filter.a=b.clean") || ExitCode(err) != -1 {
		t.Errorf("err = %v (exit %d), want a refusal naming filter.a=b.clean", err, ExitCode(err))
	}
	if got := h.fired(); len(got) > 0 {
		t.Errorf("ran: %v", got)
	}
	if _, err := rawGit(h.repo, nil, "add", "f.txt"); err != nil || len(h.fired()) == 0 {
		t.Errorf("plain git did not run the filter (%v): the case tests nothing", err)
	}
}

// TestLookupOnlyWhenNeeded: a repository whose config names no program
// costs no look-up; one that does, or that includes a file, does.
func TestLookupOnlyWhenNeeded(t *testing.T) {
	h := newHostile(t)
	wt := filepath.Join(h.tools, "linked")
	h.raw("worktree", "add", "-q", "--detach", wt)
	count := func(dir string) int64 {
		before := lookups.Load()
		if _, err := Run(context.Background(), time.Minute, dir, "rev-parse", "HEAD"); err != nil {
			t.Fatal(err)
		}
		return lookups.Load() - before
	}
	if n := count(h.repo) + count(wt); n != 0 {
		t.Errorf("%d look-ups for a repository that configures no program", n)
	}
	if n := count(filepath.Join(h.repo, ".git")); n != 1 { // not a top level: no shortcut
		t.Errorf("%d look-ups inside .git", n)
	}
	for _, kv := range [][2]string{{"include.path", "/nonexistent"}, {"Diff.X.TextConv", "x"}} {
		h.raw("config", kv[0], kv[1])
		if n := count(h.repo) + count(wt); n != 2 {
			t.Errorf("after %s: %d look-ups, want 2", kv[0], n)
		}
		h.raw("config", "--unset", kv[0])
	}
}

// BenchmarkRunOverhead measures a cheap git command in a repository with
// and without settings that need the look-up.
func BenchmarkRunOverhead(b *testing.B) {
	for _, withLookup := range []bool{false, true} {
		name := "plain"
		if withLookup {
			name = "lookup"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			Run(context.Background(), time.Minute, dir, "init", "-q")
			Run(context.Background(), time.Minute, dir, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "--allow-empty", "-m", "x")
			if withLookup {
				Run(context.Background(), time.Minute, dir, "config", "filter.x.clean", "cat")
			}
			for b.Loop() {
				if _, err := Run(context.Background(), time.Minute, dir, "rev-parse", "HEAD"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestExcludeLinkNotFollowed: a repository whose info/exclude is a link
// out of its git directory does not get moat's lines written through it.
func TestExcludeLinkNotFollowed(t *testing.T) {
	h := newHostile(t)
	victim := filepath.Join(h.tools, "bashrc")
	os.WriteFile(victim, []byte("user's\n"), 0o644)
	ex := filepath.Join(h.repo, ".git", "info", "exclude")
	os.Remove(ex)
	if err := os.Symlink(victim, ex); err != nil {
		t.Fatal(err)
	}
	if err := EnsureExcluded(filepath.Join(h.repo, ".git")); err == nil {
		t.Error("EnsureExcluded followed nothing and reported nothing")
	}
	if data, _ := os.ReadFile(victim); string(data) != "user's\n" {
		t.Errorf("written through the link: %q", data)
	}
	// A link that stays inside the git directory is fine.
	os.Remove(ex)
	os.WriteFile(filepath.Join(h.repo, ".git", "shared-exclude"), nil, 0o644)
	os.Symlink("../shared-exclude", ex)
	if err := EnsureExcluded(filepath.Join(h.repo, ".git")); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(h.repo, ".git", "shared-exclude")); !strings.Contains(string(data), "/.moat/worktrees/") {
		t.Errorf("shared-exclude = %q", data)
	}
}
