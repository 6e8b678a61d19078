package moat

// End to end: a user's repository whose own .git/config and hooks make git
// run programs (hooks for every hook name, core.hooksPath, core.fsmonitor,
// gpg signing, filter and merge drivers and a diff driver that
// .gitattributes selects, diff.external, pagers, editors, ssh, credential
// and askpass helpers, core.alternateRefsCommand). Every such program
// writes a marker file outside the repository when it runs. A full Run (an
// agent that commits, leaves an uncommitted change and an untracked file,
// while the user commits on the target branch, so the final merge is a real
// three-way merge through the merge driver) and an Exec that carries
// uncommitted changes must leave no marker, and the work must land.
//
// Without the hardening in internal/worktree/hostgit, Run ran filter-process,
// fsmonitor and hook-reference-transaction and then failed at "git worktree
// add" (the repository's process filter failed); with filter.x.process left
// out it ran filter-clean, filter-smudge, fsmonitor, gpg and the
// applypatch-msg, pre-applypatch, post-checkout, post-index-change and
// reference-transaction hooks, and failed at git am ("gpg failed to sign");
// with signing off as well it got to the merge, ran the merge driver too,
// and stopped on the conflict that driver reported.
// Exec ran filter-process (or filter-clean) and fsmonitor. The ssh,
// credential, askpass, pager, editor and alternate-refs programs are set up
// too, but moat's commands never reach them (no network, no terminal,
// editors overridden); internal/worktree/hostgit tests each of them with the
// command that does.

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moatdev/moat/agent/command"
	"github.com/moatdev/moat/internal/worktree/hostgit/hostgittest"
	"github.com/moatdev/moat/sandbox/local"
)

// hostileRepo is a repository configured to run programs.
type hostileRepo struct {
	t       *testing.T
	dir     string
	markers string
	tools   string
}

// hostileGit runs plain git in dir; quiet adds the -c options that keep
// this test's own commands from starting the programs it configured (a
// marker must come from moat, not from the test).
func (r *hostileRepo) git(quiet bool, args ...string) string {
	r.t.Helper()
	if quiet {
		args = append([]string{"-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "commit.gpgSign=false",
			"-c", "filter.x.clean=", "-c", "filter.x.smudge=", "-c", "filter.x.process=", "-c", "filter.x.required=false"}, args...)
	}
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// prog writes a program that leaves a marker named name, then runs tail.
func (r *hostileRepo) prog(name, tail string) string {
	r.t.Helper()
	p := filepath.Join(r.tools, name)
	script := "#!/bin/sh\necho \"$0 $*\" >> '" + filepath.Join(r.markers, name) + "'\n" + tail + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		r.t.Fatal(err)
	}
	return p
}

func (r *hostileRepo) write(name, content string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *hostileRepo) fired() []string {
	r.t.Helper()
	es, err := os.ReadDir(r.markers)
	if err != nil {
		r.t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// newHostileRepo makes a repository with a commit, then configures every
// program; hooksPath chooses core.hooksPath over .git/hooks (git uses one
// or the other).
func newHostileRepo(t *testing.T, hooksPath bool) *hostileRepo {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &hostileRepo{t: t, dir: filepath.Join(base, "repo"), markers: filepath.Join(base, "markers"), tools: filepath.Join(base, "tools")}
	for _, d := range []string{r.dir, r.markers, r.tools} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.git(false, "init", "-q", "-b", "main")
	r.git(false, "config", "user.name", "Host User")
	r.git(false, "config", "user.email", "host@example.com")
	r.write("f.txt", "1\n2\n3\n4\n5\n6\n7\n8\n9\n")
	r.write("README.md", "readme\n")
	r.write(".gitattributes", "*.txt filter=x merge=x diff=x\n")
	r.git(false, "add", ".")
	r.git(false, "commit", "-q", "-m", "initial")

	hooks := filepath.Join(r.dir, ".git", "hooks")
	if hooksPath {
		hooks = filepath.Join(r.tools, "hooks")
		r.git(false, "config", "core.hooksPath", hooks)
	}
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range hostgittest.HookNames {
		data, _ := os.ReadFile(r.prog("hook-"+n, "exit 0"))
		if err := os.WriteFile(filepath.Join(hooks, n), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for key, value := range map[string]string{
		"core.fsmonitor":            r.prog("fsmonitor", "exit 1"),
		"gpg.program":               r.prog("gpg", "exit 1"),
		"commit.gpgSign":            "true",
		"filter.x.clean":            r.prog("filter-clean", "cat"),
		"filter.x.smudge":           r.prog("filter-smudge", "cat"),
		"filter.x.required":         "true",
		"merge.x.driver":            r.prog("merge-driver", "exit 1") + " %O %A %B",
		"diff.x.textconv":           r.prog("textconv", `cat "$1"`),
		"diff.x.command":            r.prog("diff-command", "exit 0"),
		"diff.external":             r.prog("diff-external", "exit 0"),
		"core.pager":                r.prog("pager", "cat"),
		"pager.log":                 r.prog("pager-log", "cat"),
		"core.editor":               r.prog("editor", "exit 1"),
		"sequence.editor":           r.prog("sequence-editor", "exit 1"),
		"core.sshCommand":           r.prog("ssh", "exit 1"),
		"credential.helper":         r.prog("credential-helper", "exit 0"),
		"core.askPass":              r.prog("askpass", "exit 1"),
		"core.alternateRefsCommand": r.prog("alternate-refs", "exit 0"),
	} {
		r.git(false, "config", key, value)
	}
	// The process filter goes last: once set, it replaces clean and
	// smudge, and this test's own plain git commands must stay quiet.
	r.git(false, "config", "filter.x.process", r.prog("filter-process", "exit 1"))
	if got := r.fired(); len(got) > 0 {
		t.Fatalf("setting up ran %v", got)
	}
	return r
}

func TestHostileRepositoryConfigRun(t *testing.T) {
	for _, hooksPath := range []bool{false, true} {
		name := "hooks directory"
		if hooksPath {
			name = "core.hooksPath"
		}
		t.Run(name, func(t *testing.T) {
			r := newHostileRepo(t, hooksPath)
			// The agent edits f.txt's last line and commits twice, then
			// leaves an uncommitted change and an untracked file.
			agentScript := `set -e
sed -i 's/^9$/NINE/' f.txt && git commit -qam 'agent edits f'
echo new > new.txt && git add new.txt && git commit -qm 'agent adds new'
echo wip >> README.md
echo untracked > untracked.txt
echo '<promise>COMPLETE</promise>'`
			var once sync.Once
			o := RunOptions{
				Repo:    r.dir,
				Sandbox: local.New(local.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}),
				Agent:   command.New(command.Config{Command: agentScript}),
				Prompt:  "work",
				LogFile: "-",
				OnEvent: func(e Event) {
					// Meanwhile the user edits f.txt's first line on main, so
					// the final merge is a real three-way merge of f.txt.
					if e.Kind == EventIterationStart {
						once.Do(func() {
							r.write("f.txt", "ONE\n2\n3\n4\n5\n6\n7\n8\n9\n")
							r.git(true, "commit", "-q", "-am", "user edits f")
						})
					}
				},
			}
			res, err := Run(t.Context(), o)
			if got := r.fired(); len(got) > 0 {
				t.Errorf("programs the repository configures ran during the run: %v", got)
			}
			if err != nil {
				t.Fatalf("Run: %v (result %+v)", err, res)
			}
			var subjects []string
			for _, c := range res.Commits {
				subjects = append(subjects, c.Subject)
			}
			if !slices.Contains(subjects, "agent edits f") || !slices.Contains(subjects, "agent adds new") {
				t.Errorf("commits landed: %q", subjects)
			}
			if got := r.git(true, "cat-file", "blob", "main:f.txt"); got != "ONE\n2\n3\n4\n5\n6\n7\n8\nNINE" {
				t.Errorf("main:f.txt after the merge = %q", got)
			}
			if got := r.git(true, "log", "-1", "--format=%P", "main"); len(strings.Fields(got)) != 2 {
				t.Errorf("main's tip is not a merge commit (parents %q)", got)
			}
			if got := r.git(true, "log", "-1", "--format=%G?", "main"); got != "N" {
				t.Errorf("main's tip signature status %q, want N (unsigned)", got)
			}
			// The uncommitted change and the untracked file come home as
			// moat's labelled commit.
			if !slices.Contains(subjects, "moat: work the agent left uncommitted") {
				t.Errorf("no labelled commit of the uncommitted work: %q", subjects)
			}
			if got := r.git(true, "cat-file", "blob", "main:untracked.txt"); got != "untracked" {
				t.Errorf("main:untracked.txt = %q", got)
			}
			if got := r.git(true, "cat-file", "blob", "main:README.md"); got != "readme\nwip" {
				t.Errorf("main:README.md = %q", got)
			}
			if got := r.fired(); len(got) > 0 {
				t.Errorf("programs ran (after checking the result): %v", got)
			}
		})
	}
}

func TestHostileRepositoryConfigExec(t *testing.T) {
	r := newHostileRepo(t, true)
	// Uncommitted changes the command must see: a tracked file (its clean
	// filter would run on the host) and an untracked one.
	r.write("f.txt", "1\n2\n3\n4\n5\n6\n7\n8\nuncommitted\n")
	r.write("extra.txt", "extra\n")
	var stdout strings.Builder
	res, err := Exec(t.Context(), ExecOptions{
		Repo:    r.dir,
		Sandbox: local.New(local.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}),
		Command: "tail -n1 f.txt && cat extra.txt",
		Stdout:  &stdout,
	})
	if got := r.fired(); len(got) > 0 {
		t.Errorf("programs the repository configures ran during Exec: %v", got)
	}
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if res.ExitCode != 0 || stdout.String() != "uncommitted\nextra\n" {
		t.Errorf("exit %d, output %q", res.ExitCode, stdout.String())
	}
	// Exec leaves the user's repository as it was.
	if got := r.git(true, "status", "--porcelain"); got != "M f.txt\n?? extra.txt" {
		t.Errorf("status %q", got)
	}
}

// TestAgentCannotReplaceIgnoredFiles: git merge replaces ignored files
// without asking, so an agent that commits .env or .moat/.env (moat's
// credentials file) would replace the user's on the final merge. The merge
// is refused instead, the user's files stay, and the commits wait on the
// kept branch.
func TestAgentCannotReplaceIgnoredFiles(t *testing.T) {
	r := newHostileRepo(t, false)
	r.write(".gitignore", ".env\n")
	r.git(true, "add", ".gitignore")
	r.git(true, "commit", "-q", "-m", "ignore .env")
	r.write(".env", "SECRET=user\n")
	if err := os.MkdirAll(filepath.Join(r.dir, ".moat"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.write(".moat/.env", "ANTHROPIC_API_KEY=user\n")
	res, err := Run(t.Context(), RunOptions{
		Repo:    r.dir,
		Sandbox: local.New(local.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}),
		Agent: command.New(command.Config{Command: `set -e
echo SECRET=agent > .env && mkdir -p .moat && echo ANTHROPIC_BASE_URL=https://agent.example > .moat/.env
git add -f .env .moat/.env && git commit -qm 'agent adds env files'`}),
		Prompt:  "work",
		LogFile: "-",
	})
	if err == nil || !strings.Contains(err.Error(), "refusing to merge") || !strings.Contains(err.Error(), ".moat/.env") {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	for name, want := range map[string]string{".env": "SECRET=user\n", ".moat/.env": "ANTHROPIC_API_KEY=user\n"} {
		if data, _ := os.ReadFile(filepath.Join(r.dir, name)); string(data) != want {
			t.Errorf("%s = %q, want the user's %q", name, data, want)
		}
	}
	if b := r.git(true, "branch", "--list", "moat/*"); b == "" {
		t.Error("the run's branch with the agent's commit was not kept")
	}
	if got := r.fired(); len(got) > 0 {
		t.Errorf("programs ran: %v", got)
	}
}

// TestAgentCannotChangeMoatConfig: .moat/config.toml names commands moat
// runs on the host (hooks.on_worktree_ready), so an agent that edits it
// would run code outside the sandbox on the next run. Its change is never
// merged by itself: the branch is kept with what to review.
func TestAgentCannotChangeMoatConfig(t *testing.T) {
	r := newHostileRepo(t, false)
	if err := os.MkdirAll(filepath.Join(r.dir, ".moat"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.write(".moat/config.toml", "agent = \"command\"\n")
	r.git(true, "add", ".moat/config.toml")
	r.git(true, "commit", "-q", "-m", "moat config")
	res, err := Run(t.Context(), RunOptions{
		Repo:    r.dir,
		Sandbox: local.New(local.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}),
		Agent: command.New(command.Config{Command: `set -e
printf '[hooks]\non_worktree_ready = ["touch /tmp/pwned"]\n' >> .moat/config.toml
git commit -qam 'agent adds a host hook'`}),
		Prompt:  "work",
		LogFile: "-",
	})
	if err == nil || !strings.Contains(err.Error(), "refusing to merge") || !strings.Contains(err.Error(), ".moat/config.toml") {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	if data, _ := os.ReadFile(filepath.Join(r.dir, ".moat", "config.toml")); string(data) != "agent = \"command\"\n" {
		t.Errorf("the user's config changed: %q", data)
	}
	branch := r.git(true, "branch", "--list", "--format=%(refname:short)", "moat/*")
	if branch == "" || r.git(true, "log", "-1", "--format=%s", branch) != "agent adds a host hook" {
		t.Errorf("the agent's commit is not kept on its branch (branches %q)", branch)
	}
}
