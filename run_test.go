package moat_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent/claude"
	"github.com/moatdev/moat/internal/sshdtest"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
	"github.com/moatdev/moat/sandbox/local"
	"github.com/moatdev/moat/sandbox/sshhost"
)

// target is a sandbox provider under test, with a check that it left
// nothing behind.
type target struct {
	name     string
	provider sandbox.Provider
	leftover func() []string
}

func targets(t *testing.T) []target {
	t.Helper()
	emu := exedevtest.NewServer(t)
	srv := sshdtest.Start(t, sshdtest.Options{})
	// Unique per test process: another `go test` may use the same host user.
	sshBase := fmt.Sprintf("moat-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() { os.RemoveAll(filepath.Join(srv.HomeDir, sshBase)) })
	return []target{
		{"local", local.New(local.Config{}), func() []string { return nil }},
		{"sshhost", sshhost.New(sshhost.Config{
			Addr: srv.Addr, User: srv.User, IdentityFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile,
			WorkDir: "~/" + sshBase,
			SSH:     sshx.Config{SSHConfigFile: "none", AgentSocket: "none", HomeDir: t.TempDir()},
		}), func() []string {
			entries, _ := os.ReadDir(filepath.Join(srv.HomeDir, sshBase))
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			return names
		}},
		{"exedev", exedev.New(emu.Config()), emu.VMs},
	}
}

// git runs git in dir and returns its trimmed output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newRepo makes a repository on main with a README and the fake agent.
func newRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	git(t, dir, "config", "user.name", "Host User")
	git(t, dir, "config", "user.email", "host@example.com")
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("line one\nline two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fake, err := os.ReadFile("testdata/fakeclaude.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fakeclaude.sh"), fake, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "initial")
	return dir
}

// fakeAgent is Claude Code played by testdata/fakeclaude.sh, which runs its
// prompt as a shell script in the repository.
func fakeAgent() *claude.Agent { return claude.New(claude.Config{Binary: "./fakeclaude.sh"}) }

type scenario struct {
	name string
	run  func(t *testing.T, tg target)
}

func runOpts(tg target, repo, prompt string) moat.RunOptions {
	return moat.RunOptions{Repo: repo, Sandbox: tg.provider, Agent: fakeAgent(), Prompt: prompt, LogFile: "-"}
}

func assertClean(t *testing.T, tg target, repo string) {
	t.Helper()
	if left := tg.leftover(); len(left) > 0 {
		t.Errorf("%s left sandboxes behind: %v", tg.name, left)
	}
	if b := git(t, repo, "branch", "--list", "moat/*"); b != "" {
		t.Errorf("temporary branches left: %s", b)
	}
}

func TestRunEndToEnd(t *testing.T) {
	scenarios := []scenario{
		{"OneCommit", func(t *testing.T, tg target) {
			repo := newRepo(t)
			var texts, tools []string
			var mu sync.Mutex
			o := runOpts(tg, repo, `say "adding hello"; tool "echo hello > hello.txt"; commit "add hello"; say "<promise>COMPLETE</promise>"`)
			o.OnEvent = func(e moat.Event) {
				mu.Lock()
				defer mu.Unlock()
				switch e.Kind {
				case moat.EventText:
					texts = append(texts, e.Text)
				case moat.EventToolCall:
					tools = append(tools, e.Tool+"("+e.ToolArg+")")
				}
			}
			res, err := moat.Run(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Commits) != 1 || res.Commits[0].Subject != "add hello" || res.Branch != "main" {
				t.Fatalf("result %+v", res)
			}
			if got := git(t, repo, "log", "-1", "--format=%s|%an", "main"); got != "add hello|Host User" {
				t.Errorf("main's last commit: %q", got)
			}
			if got := git(t, repo, "show", "main:hello.txt"); got != "hello" {
				t.Errorf("hello.txt on main: %q", got)
			}
			if res.CompletionSignal != moat.DefaultCompletionSignal || len(res.Iterations) != 1 || res.Iterations[0].SessionID != "fake-session-1" {
				t.Errorf("iterations %+v signal %q", res.Iterations, res.CompletionSignal)
			}
			if u := res.Iterations[0].Usage; u == nil || u.InputTokens != 100 || u.OutputTokens != 20 {
				t.Errorf("usage %+v", u)
			}
			if !strings.Contains(strings.Join(texts, "|"), "adding hello") || !strings.Contains(strings.Join(tools, "|"), "Bash(echo hello > hello.txt)") {
				t.Errorf("events: texts %q tools %q", texts, tools)
			}
			assertClean(t, tg, repo)
		}},
		{"SeveralIterations", func(t *testing.T, tg target) {
			repo := newRepo(t)
			o := runOpts(tg, repo, `echo "$ITERATION" >> iterations.txt; commit "iteration $ITERATION"; if [ "$ITERATION" -ge 3 ]; then say "<promise>COMPLETE</promise>"; fi`)
			o.MaxIterations = 5
			res, err := moat.Run(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Iterations) != 3 || len(res.Commits) != 3 {
				t.Fatalf("%d iterations, %d commits; want 3 and 3", len(res.Iterations), len(res.Commits))
			}
			if got := git(t, repo, "show", "main:iterations.txt"); got != "1\n2\n3" {
				t.Errorf("iterations.txt: %q", got)
			}
			assertClean(t, tg, repo)
		}},
		{"NoCommits", func(t *testing.T, tg target) {
			repo := newRepo(t)
			before := git(t, repo, "rev-parse", "main")
			res, err := moat.Run(t.Context(), runOpts(tg, repo, `say "nothing to do"`))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Commits) != 0 || git(t, repo, "rev-parse", "main") != before || len(res.Kept) != 0 {
				t.Errorf("result %+v", res)
			}
			assertClean(t, tg, repo)
		}},
		{"UncommittedAndUntracked", func(t *testing.T, tg target) {
			repo := newRepo(t)
			res, err := moat.Run(t.Context(), runOpts(tg, repo, `echo "line three" >> README.md; mkdir -p new; echo fresh > "new/un tracked.txt"`))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Commits) != 1 || res.Commits[0].Subject != "moat: work the agent left uncommitted" {
				t.Fatalf("uncommitted work did not come home as one labelled commit: %+v (kept %+v)", res.Commits, res.Kept)
			}
			if got := git(t, repo, "show", "main:README.md"); got != "line one\nline two\nline three" {
				t.Errorf("main:README.md = %q", got)
			}
			if got := git(t, repo, "show", "main:new/un tracked.txt"); got != "fresh" {
				t.Errorf("the untracked file on main: %q", got)
			}
			if left := tg.leftover(); len(left) > 0 {
				t.Errorf("sandboxes left: %v", left)
			}
		}},
		{"BinaryFile", func(t *testing.T, tg target) {
			repo := newRepo(t)
			var said string
			o := runOpts(tg, repo, `head -c 5000 /dev/urandom > blob.bin; printf '\000\377' >> blob.bin; commit "binary"; say "sha=$(sha256sum blob.bin | cut -c1-64)"`)
			o.OnEvent = func(e moat.Event) {
				if e.Kind == moat.EventText && strings.HasPrefix(e.Text, "sha=") {
					said = strings.TrimPrefix(e.Text, "sha=")
				}
			}
			res, err := moat.Run(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Commits) != 1 {
				t.Fatalf("commits %+v", res.Commits)
			}
			b, err := exec.Command("git", "-C", repo, "show", "main:blob.bin").Output()
			if err != nil || len(b) != 5002 {
				t.Fatalf("blob.bin on main: %d bytes, %v", len(b), err)
			}
			sum := sha256.Sum256(b)
			if got := hex.EncodeToString(sum[:]); got != said {
				t.Errorf("blob.bin on main has sha256 %s; the agent made %s", got, said)
			}
			assertClean(t, tg, repo)
		}},
		{"HostCommitMeanwhile", func(t *testing.T, tg target) {
			repo := newRepo(t)
			o := runOpts(tg, repo, `echo agent > agent.txt; commit "agent work"`)
			o.OnEvent = func(e moat.Event) {
				if e.Kind == moat.EventIterationStart {
					os.WriteFile(filepath.Join(repo, "host.txt"), []byte("host\n"), 0o644)
					git(t, repo, "add", "host.txt")
					git(t, repo, "commit", "-q", "-m", "host work")
				}
			}
			res, err := moat.Run(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			if got := git(t, repo, "log", "--format=%s", "main"); !strings.Contains(got, "agent work") || !strings.Contains(got, "host work") {
				t.Errorf("main's history: %q", got)
			}
			if parents := strings.Fields(git(t, repo, "log", "-1", "--format=%P", "main")); len(parents) != 2 {
				t.Errorf("main's tip has %d parents; want a real merge", len(parents))
			}
			if res.MergeCommit == nil || res.MergeCommit.SHA != git(t, repo, "rev-parse", "main") || len(res.Commits) != 1 || res.Commits[0].Subject != "agent work" {
				t.Errorf("the result must list the agent's commit and, apart, moat's merge commit: %+v merge %+v", res.Commits, res.MergeCommit)
			}
			assertClean(t, tg, repo)
		}},
		{"HistoryAsMade", func(t *testing.T, tg target) {
			// Commits keep their SHAs: a merge commit, several authors,
			// fixed dates, all as the agent made them.
			repo := newRepo(t)
			var said string
			o := runOpts(tg, repo, `export GIT_AUTHOR_DATE='2001-02-03T04:05:06Z' GIT_COMMITTER_DATE='2001-02-03T04:05:06Z'
git checkout -qb side && echo side > side.txt && git add side.txt && GIT_AUTHOR_NAME='Ada Other' GIT_AUTHOR_EMAIL=ada@example.com git commit -qm 'by Ada'
git checkout -q - && echo mine > mine.txt && git add mine.txt && git commit -qm 'by the agent'
git merge -q --no-edit side
say "history=$(git rev-list --reverse HEAD ^HEAD~1^1 ^HEAD^2~1 | tr '
' ,)"`)
			o.OnEvent = func(e moat.Event) {
				if e.Kind == moat.EventText && strings.HasPrefix(e.Text, "history=") {
					said = strings.TrimPrefix(e.Text, "history=")
				}
			}
			res, err := moat.Run(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range res.Commits {
				got = append(got, c.SHA)
			}
			want := strings.Split(strings.TrimSuffix(said, ","), ",")
			slices.Sort(got)
			slices.Sort(want)
			if len(want) != 3 || !slices.Equal(got, want) {
				t.Errorf("landed %v; the agent made %v", got, want)
			}
			if res.MergeCommit != nil {
				t.Errorf("main had not moved, yet moat made a merge commit %+v", res.MergeCommit)
			}
			if a := git(t, repo, "log", "--format=%an", "main"); !strings.Contains(a, "Ada Other") {
				t.Errorf("authors on main: %q", a)
			}
			assertClean(t, tg, repo)
		}},
		{"ConflictWithHost", func(t *testing.T, tg target) {
			repo := newRepo(t)
			o := runOpts(tg, repo, `printf 'agent one\nline two\n' > README.md; commit "agent edits line one"`)
			o.OnEvent = func(e moat.Event) {
				if e.Kind == moat.EventIterationStart {
					os.WriteFile(filepath.Join(repo, "README.md"), []byte("host one\nline two\n"), 0o644)
					git(t, repo, "commit", "-q", "-am", "host edits line one")
				}
			}
			res, err := moat.Run(t.Context(), o)
			if !errors.Is(err, moat.ErrMergeConflict) {
				t.Fatalf("Run: %v, want ErrMergeConflict", err)
			}
			var kept *moat.Kept
			for i, k := range res.Kept {
				if k.What == "branch" {
					kept = &res.Kept[i]
				}
			}
			if kept == nil || !strings.HasPrefix(kept.Path, "moat/") || kept.Fix == "" {
				t.Fatalf("the conflicting branch is not kept with a fix: %+v", res.Kept)
			}
			if got := git(t, repo, "log", "-1", "--format=%s", kept.Path); got != "agent edits line one" {
				t.Errorf("kept branch tip: %q", got)
			}
			if got := git(t, repo, "show", "main:README.md"); got != "host one\nline two" {
				t.Errorf("main's README: %q", got)
			}
			if st := git(t, repo, "status", "--porcelain"); st != "" {
				t.Errorf("the user's checkout was left dirty: %q", st)
			}
			if left := tg.leftover(); len(left) > 0 {
				t.Errorf("sandboxes left: %v", left)
			}
		}},
		{"NamedBranchTwice", func(t *testing.T, tg target) {
			repo := newRepo(t)
			for i, msg := range []string{"first", "second"} {
				o := runOpts(tg, repo, `echo `+msg+` >> feature.txt; commit "`+msg+`"`)
				o.Branch = "feature"
				res, err := moat.Run(t.Context(), o)
				if err != nil {
					t.Fatalf("run %d: %v", i+1, err)
				}
				if res.Branch != "feature" || len(res.Commits) != 1 || res.Commits[0].Subject != msg {
					t.Fatalf("run %d: %+v", i+1, res)
				}
			}
			if got := git(t, repo, "log", "--format=%s", "feature"); got != "second\nfirst\ninitial" {
				t.Errorf("feature: %q", got)
			}
			if git(t, repo, "log", "-1", "--format=%s", "main") != "initial" {
				t.Error("main moved")
			}
			assertClean(t, tg, repo)
		}},
		{"IdleTimeout", func(t *testing.T, tg target) {
			repo := newRepo(t)
			o := runOpts(tg, repo, `echo wip > wip.txt; commit "work before the stall"; say "thinking"; sleep 60`)
			o.IdleTimeout = 5 * time.Second // room for the commit on a slow machine
			start := time.Now()
			res, err := moat.Run(t.Context(), o)
			if !errors.Is(err, moat.ErrIdleTimeout) {
				t.Fatalf("Run: %v, want ErrIdleTimeout", err)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v", d)
			}
			branch := keptPath(res, "branch")
			if branch == "" || git(t, repo, "log", "-1", "--format=%s", branch) != "work before the stall" {
				t.Errorf("the work synced out before the timeout is not kept: %+v", res.Kept)
			}
			if left := tg.leftover(); len(left) > 0 {
				t.Errorf("sandboxes left: %v", left)
			}
		}},
		{"CompletionTimeout", func(t *testing.T, tg target) {
			repo := newRepo(t)
			o := runOpts(tg, repo, `echo done > done.txt; commit "done"; say "<promise>COMPLETE</promise>"; sleep 60`)
			o.CompletionTimeout = time.Second
			res, err := moat.Run(t.Context(), o)
			if err != nil {
				t.Fatalf("an agent hanging after its completion signal must count as complete: %v", err)
			}
			if res.CompletionSignal == "" || len(res.Commits) != 1 {
				t.Errorf("result %+v", res)
			}
			assertClean(t, tg, repo)
		}},
		{"AgentFails", func(t *testing.T, tg target) {
			repo := newRepo(t)
			res, err := moat.Run(t.Context(), runOpts(tg, repo, `echo partial > partial.txt; commit "partial work"; echo "boom" >&2; exit 3`))
			if !errors.Is(err, moat.ErrAgentFailed) || !strings.Contains(err.Error(), "exited with code 3") || !strings.Contains(err.Error(), "boom") {
				t.Fatalf("Run: %v", err)
			}
			if git(t, repo, "log", "-1", "--format=%s", "main") != "initial" {
				t.Error("a failed run merged into main")
			}
			branch := keptPath(res, "branch")
			if branch == "" || git(t, repo, "log", "-1", "--format=%s", branch) != "partial work" {
				t.Errorf("the failed run's commit is not kept on a branch: %+v", res.Kept)
			}
			if left := tg.leftover(); len(left) > 0 {
				t.Errorf("sandboxes left: %v", left)
			}
		}},
		{"Cancel", func(t *testing.T, tg target) {
			repo := newRepo(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			o := runOpts(tg, repo, `echo before > before.txt; commit "before cancel"; say "ready"; sleep 60`)
			o.OnEvent = func(e moat.Event) {
				if e.Kind == moat.EventText && e.Text == "ready" {
					cancel()
				}
			}
			res, err := moat.Run(ctx, o)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v, want context.Canceled", err)
			}
			branch := keptPath(res, "branch")
			if branch == "" || git(t, repo, "log", "-1", "--format=%s", branch) != "before cancel" {
				t.Errorf("work done before the cancel is lost: %+v", res.Kept)
			}
			if left := tg.leftover(); len(left) > 0 {
				t.Errorf("sandboxes left: %v", left)
			}
		}},
		{"BackgroundChildHoldsStdout", func(t *testing.T, tg target) {
			// The agent's exit ends the iteration: a child it left in the
			// background, holding its stdout, neither keeps the run
			// waiting for the idle timeout nor fails it.
			repo := newRepo(t)
			o := runOpts(tg, repo, `echo bg > bg.txt; commit "work before exit"; (sleep 1000 &); say "leaving a child behind"`)
			o.IdleTimeout = 2 * time.Minute
			o.ExitGrace = time.Second
			var mu sync.Mutex
			var warnings []string
			o.OnEvent = func(e moat.Event) {
				if e.Kind == moat.EventWarning {
					mu.Lock()
					warnings = append(warnings, e.Text)
					mu.Unlock()
				}
			}
			start := time.Now()
			res, err := moat.Run(t.Context(), o)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("Run: %v (after %v)", err, took)
			}
			if took > 45*time.Second {
				t.Errorf("the run took %v: it waited for the background child", took)
			}
			if len(res.Commits) != 1 || res.Commits[0].Subject != "work before exit" {
				t.Errorf("commits %+v", res.Commits)
			}
			if got := git(t, repo, "log", "-1", "--format=%s", "main"); got != "work before exit" {
				t.Errorf("main's last commit: %q", got)
			}
			mu.Lock()
			defer mu.Unlock()
			named := false
			for _, w := range warnings {
				named = named || strings.Contains(w, "sleep 1000")
			}
			// The local sandbox's pid namespace dies with the agent, and the
			// child with it: nothing is left to name there.
			if !named && tg.name != "local" {
				t.Errorf("no warning names the stray process: %q", warnings)
			}
			t.Logf("took %v; warnings %q", took, warnings)
			assertClean(t, tg, repo)
		}},
	}
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) { sc.run(t, tg) })
			}
		})
	}
}

// TestRunOptions covers the options the scenarios do not: prompt arguments
// and built-ins, hooks on both sides, files copied from the repository root
// (an untracked .env really arrives), and Env.
func TestRunOptions(t *testing.T) {
	repo := newRepo(t)
	if err := os.WriteFile(filepath.Join(repo, ".env"), []byte("FROM_DOTENV=yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "config", "--local", "core.excludesFile", "/dev/null")
	os.WriteFile(filepath.Join(repo, ".git", "info", "exclude"), []byte(".env\n"), 0o644)
	hostMark := filepath.Join(t.TempDir(), "host-hook-ran")
	o := moat.RunOptions{
		Repo: repo, Sandbox: local.New(local.Config{}), Agent: fakeAgent(), LogFile: filepath.Join(t.TempDir(), "run.log"),
		Prompt:         `printf '%s|%s|%s|%s|%s\n' "{{WHO}}" "{{ SOURCE_BRANCH }}" "{{TARGET_BRANCH}}" "$(cat .env)" "$MOAT_TEST_ENV" > out.txt; cat hook.txt >> out.txt; commit "options"`,
		PromptArgs:     map[string]string{"WHO": "it's me"},
		Env:            map[string]string{"MOAT_TEST_ENV": "env value"},
		CopyToWorktree: []string{".env"},
		Hooks: moat.Hooks{
			OnWorktreeReady: []string{"test -f README.md && test -d .git -o -f .git && touch " + hostMark},
			OnSandboxReady:  []string{"echo sandbox hook > hook.txt"},
		},
	}
	res, err := moat.Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	got := git(t, repo, "show", "main:out.txt")
	parts := strings.Split(got, "|")
	if len(parts) != 5 || parts[0] != "it's me" || !strings.HasPrefix(parts[1], "moat/") || parts[2] != "main" ||
		parts[3] != "FROM_DOTENV=yes" || !strings.HasPrefix(parts[4], "env value\nsandbox hook") {
		t.Errorf("out.txt = %q", got)
	}
	if _, err := os.Stat(hostMark); err != nil {
		t.Errorf("the host hook did not run in the worktree: %v", err)
	}
	if b, err := os.ReadFile(res.LogFile); err != nil || !strings.Contains(string(b), "iteration_start") {
		t.Errorf("log file %s: %v %q", res.LogFile, err, b)
	}
	var names []string
	for _, p := range res.Phases {
		names = append(names, p.Name)
	}
	// pack and create run at the same time, so either may end first.
	slices.Sort(names)
	if strings.Join(names, ",") != "agent,close,create,merge,pack,prepare,setup,sync in,sync out" {
		t.Errorf("phases %v", names)
	}

	o.Prompt = "uses {{MISSING}}"
	if _, err := moat.Run(t.Context(), o); err == nil || !strings.Contains(err.Error(), "{{MISSING}}") {
		t.Errorf("a prompt with an unset {{MISSING}}: %v", err)
	}
	o.Prompt, o.PromptFile = "", filepath.Join(t.TempDir(), "none.md")
	if _, err := moat.Run(t.Context(), o); err == nil || !strings.Contains(err.Error(), "prompt file") {
		t.Errorf("a missing prompt file: %v", err)
	}
	o.Prompt = "both"
	if _, err := moat.Run(t.Context(), o); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Errorf("Prompt and PromptFile: %v", err)
	}
	if b := git(t, repo, "branch", "--list", "moat/*"); b != "" {
		t.Errorf("temporary branches left: %s", b)
	}
}

// TestSecretsRedacted: an agent that prints its credentials does not put
// them in events, the log file or the error: SecretEnv's values, and
// those of Env under keys that look secret.
func TestSecretsRedacted(t *testing.T) {
	repo := newRepo(t)
	const secret = "sk-very-secret-1234"
	var events strings.Builder
	o := moat.RunOptions{
		Repo: repo, Sandbox: local.New(local.Config{}), Agent: fakeAgent(),
		LogFile: filepath.Join(t.TempDir(), "run.log"),
		Env:     map[string]string{"ANTHROPIC_API_KEY": secret, "db_password_prod": "pw-for-the-db", "MY_CREDENTIALS": "cred-file-text"},
		SecretEnv: map[string]string{"SHORTER": "sk-very", "DATABASE_URL": "postgres://u:hunter22@db/x",
			"PEM": "-----BEGIN KEY-----\nline-one-of-the-key\nline-two-of-the-key\n-----END KEY-----"},
		Prompt:  `say "my key is $ANTHROPIC_API_KEY"; tool "echo $ANTHROPIC_API_KEY $db_password_prod"; echo "stderr $ANTHROPIC_API_KEY $MY_CREDENTIALS $DATABASE_URL" >&2; printf '%s\n' "$PEM" >&2; exit 1`,
		OnEvent: func(e moat.Event) { events.WriteString(e.Text + e.ToolArg + "\n") },
	}
	res, err := moat.Run(t.Context(), o)
	if err == nil {
		t.Fatal("the agent failed; Run returned no error")
	}
	logged, _ := os.ReadFile(res.LogFile)
	for what, text := range map[string]string{"events": events.String(), "log file": string(logged), "error": err.Error()} {
		for _, leak := range []string{secret, "-secret-1234", "line-one-of-the-key", "line-two-of-the-key", "pw-for-the-db", "cred-file-text", "hunter22"} {
			if strings.Contains(text, leak) {
				t.Errorf("%q is in the %s:\n%s", leak, what, text)
			}
		}
	}
	for _, want := range []string{"my key is [redacted]", "echo [redacted] [redacted]", "stderr [redacted] [redacted] [redacted]"} {
		if !strings.Contains(events.String(), want) {
			t.Errorf("events lack %q:\n%s", want, events.String())
		}
	}
	if st, err := os.Stat(res.LogFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v, %v; want 0600", st.Mode(), err)
	}
}

// TestOrdinaryEnvShown: the values of ordinary Env keys reach the sandbox
// and are shown as given, in events, the log, the commit subjects and
// errors, even when they are words of the output; a SecretEnv value in
// the same run is still hidden.
func TestOrdinaryEnvShown(t *testing.T) {
	repo := newRepo(t)
	var events strings.Builder
	o := moat.RunOptions{
		Repo: repo, Sandbox: local.New(local.Config{}), Agent: fakeAgent(),
		LogFile:   filepath.Join(t.TempDir(), "run.log"),
		Env:       map[string]string{"MODE": "delbase", "GOFLAGS": "-count=1", "SRC_DIR": "/home/user/project", "KEYBOARD": "dvorak-layout"},
		SecretEnv: map[string]string{"MODE_TOKEN": "tok-abcdef-123"},
		Prompt: `say "mode $MODE flags $GOFLAGS dir $SRC_DIR kb $KEYBOARD tok $MODE_TOKEN"; ` +
			`tool "go test $GOFLAGS ./..."; echo x > x.txt; commit "after $MODE"`,
		OnEvent: func(e moat.Event) { events.WriteString(e.Text + e.ToolArg + "\n") },
	}
	res, err := moat.Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	logged, _ := os.ReadFile(res.LogFile)
	const said = "mode delbase flags -count=1 dir /home/user/project kb dvorak-layout tok [redacted]"
	for what, text := range map[string]string{"events": events.String(), "log file": string(logged)} {
		for _, want := range []string{said, "go test -count=1 ./..."} {
			if !strings.Contains(text, want) {
				t.Errorf("the %s lack %q:\n%s", what, want, text)
			}
		}
		if strings.Contains(text, "tok-abcdef-123") {
			t.Errorf("the SecretEnv value is in the %s:\n%s", what, text)
		}
	}
	if len(res.Commits) != 1 || res.Commits[0].Subject != "after delbase" {
		t.Errorf("commits %+v; want one, subject \"after delbase\"", res.Commits)
	}
	if got := git(t, repo, "log", "-1", "--format=%s"); got != "after delbase" {
		t.Errorf("HEAD's subject is %q", got)
	}

	// An error quoting an ordinary value shows it too.
	o.Prompt = `echo "failing in mode $MODE with $MODE_TOKEN" >&2; exit 4`
	o.LogFile = "-"
	_, err = moat.Run(t.Context(), o)
	if err == nil || !strings.Contains(err.Error(), "failing in mode delbase with [redacted]") {
		t.Errorf("Run = %v; want the error to quote the ordinary value and hide the secret", err)
	}
}

// TestSecretKey: which names look secret.
func TestSecretKey(t *testing.T) {
	for name, want := range map[string]bool{
		"OPENAI_API_KEY": true, "GITHUB_TOKEN": true, "aws_secret": true, "DB_PASSWORD": true, "password": true,
		"MyPasswordFile": true, "GOOGLE_APPLICATION_CREDENTIALS": true, "credential": true, "Api_Key": true,
		"MODE": false, "GOFLAGS": false, "KEYBOARD": false, "KEY": false, "TOKENS_PER_MINUTE": false, "SECRETARY": false, "PATH": false,
	} {
		if got := moat.SecretKey(name); got != want {
			t.Errorf("SecretKey(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestFailedNamedBranchRun: commits a failed run made are on its named
// branch, and the result lists them.
func TestFailedNamedBranchRun(t *testing.T) {
	repo := newRepo(t)
	res, err := moat.Run(t.Context(), moat.RunOptions{
		Repo: repo, Sandbox: local.New(local.Config{}), Agent: fakeAgent(), LogFile: "-", Branch: "feature",
		Prompt: `echo a > a.txt; commit "landed before failing"; exit 2`,
	})
	if !errors.Is(err, moat.ErrAgentFailed) {
		t.Fatalf("Run: %v", err)
	}
	if len(res.Commits) != 1 || res.Commits[0].Subject != "landed before failing" || git(t, repo, "log", "-1", "--format=%s", "feature") != "landed before failing" {
		t.Errorf("commits %+v", res.Commits)
	}
}

// keptPath is the path of what res kept of the given kind, "" if none.
func keptPath(res *moat.RunResult, what string) string {
	for _, k := range res.Kept {
		if k.What == what {
			return k.Path
		}
	}
	return ""
}

// TestConcurrentRuns: three runs at once on one repository all land their
// commits on main (merges serialise behind moat's repository lock).
func TestConcurrentRuns(t *testing.T) {
	repo := newRepo(t)
	p := local.New(local.Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Go(func() {
			_, err := moat.Run(t.Context(), moat.RunOptions{
				Repo: repo, Sandbox: p, Agent: fakeAgent(), LogFile: "-",
				Prompt: fmt.Sprintf(`echo %d > run-%d.txt; commit "run %d"`, i, i, i),
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	log := git(t, repo, "log", "--format=%s", "main")
	for i := range 3 {
		if !strings.Contains(log, fmt.Sprintf("run %d", i)) {
			t.Errorf("run %d's commit is not on main:\n%s", i, log)
		}
	}
	if st := git(t, repo, "status", "--porcelain"); st != "" {
		t.Errorf("the checkout is dirty: %q", st)
	}
	if b := git(t, repo, "branch", "--list", "moat/*"); b != "" {
		t.Errorf("temporary branches left: %s", b)
	}
}
