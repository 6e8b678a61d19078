package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat/internal/config"
	"github.com/moatdev/moat/internal/dotenv"
	"github.com/moatdev/moat/internal/registry"
	"github.com/moatdev/moat/internal/testenv"
)

var initFiles = []string{".moat/config.toml", ".moat/prompt.md", ".moat/.env.example", ".moat/.gitignore"}

// initGitRepo returns a fresh `git init` repository with a subdirectory.
func initGitRepo(t *testing.T) string {
	t.Helper()
	testenv.RequireBinary(t, "git", "git")
	root := t.TempDir()
	if out, err := exec.Command("git", "init", "-q", root).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	if err := os.MkdirAll(filepath.Join(root, "sub", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	// t.TempDir may be a symlink (macOS); git reports the resolved path.
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// execInit runs `moat init args...` with stdin, as on a terminal or not.
func execInit(t *testing.T, terminal bool, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	// Under a root like main's, which silences cobra's own printing.
	cmd := &cobra.Command{Use: "moat", SilenceUsage: true, SilenceErrors: true}
	cmd.AddCommand(newInitCmdWith(func(io.Reader, io.Writer) bool { return terminal }))
	var out, errOut bytes.Buffer
	cmd.SetArgs(append([]string{"init"}, args...))
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

func readInitFiles(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, f := range initFiles {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		m[f] = string(b)
	}
	return m
}

func loadInitConfig(t *testing.T, root string) config.Config {
	t.Helper()
	cfg, found, err := config.Load(root)
	if err != nil || !found {
		t.Fatalf("config.Load after init: found %v, %v", found, err)
	}
	return cfg
}

func TestInitFresh(t *testing.T) {
	root := initGitRepo(t)
	stdout, stderr, err := execInit(t, false, "", "--repo", filepath.Join(root, "sub", "dir"),
		"--sandbox", "emulator", "--agent", "codex", "--model", "gpt-x")
	if err != nil {
		t.Fatalf("moat init: %v\n%s%s", err, stdout, stderr)
	}
	for _, f := range initFiles {
		st, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			t.Fatalf("init did not write %s: %v", f, err)
		}
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %o, want 644", f, st.Mode().Perm())
		}
		if !strings.Contains(stdout, f) {
			t.Errorf("the output does not name %s:\n%s", f, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "sub", "dir", ".moat")); err == nil {
		t.Error("init wrote .moat/ in the subdirectory, not at the repository's top level")
	}
	for _, want := range []string{"cp .moat/.env.example .moat/.env", "moat doctor", "moat run --sandbox emulator", "OPENAI_API_KEY"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the output lacks %q:\n%s", want, stdout)
		}
	}
	if stderr != "" {
		t.Errorf("stderr: %q", stderr)
	}

	cfg := loadInitConfig(t, root)
	want := config.Config{Sandbox: "emulator", Agent: "codex", Model: "gpt-x", PromptFile: ".moat/prompt.md", MaxIterations: 5}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config after init:\n got %+v\nwant %+v", cfg, want)
	}

	files := readInitFiles(t, root)
	prompt := files[".moat/prompt.md"]
	for _, want := range []string{"<promise>COMPLETE</promise>", "git commit", "small steps", "tests", "{{TARGET_BRANCH}}"} {
		if !strings.Contains(prompt, want) {
			t.Errorf("prompt.md lacks %q:\n%s", want, prompt)
		}
	}
	// Any other {{KEY}} would make every moat run fail for want of --arg.
	for _, m := range regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`).FindAllStringSubmatch(prompt, -1) {
		if m[1] != "TARGET_BRANCH" && m[1] != "SOURCE_BRANCH" {
			t.Errorf("prompt.md uses {{%s}}, which no moat run fills without --arg", m[1])
		}
	}

	if got, want := files[".moat/.gitignore"], ".env\nlogs/\nworktrees/\npatches/\n"; !strings.HasSuffix(got, want) {
		t.Errorf(".gitignore = %q, want it to end with %q", got, want)
	}
	// git itself honours it.
	for _, p := range []string{".moat/.env", ".moat/logs/run.log", ".moat/worktrees/x/f", ".moat/patches/1.patch"} {
		if err := exec.Command("git", "-C", root, "check-ignore", "-q", p).Run(); err != nil {
			t.Errorf("git does not ignore %s: %v", p, err)
		}
	}
	if err := exec.Command("git", "-C", root, "check-ignore", "-q", ".moat/config.toml").Run(); err == nil {
		t.Error("git ignores .moat/config.toml; it should be committable")
	}

	example := files[".moat/.env.example"]
	entries, err := dotenv.Parse(strings.NewReader(example))
	if err != nil {
		t.Fatalf(".env.example does not parse: %v", err)
	}
	if len(entries) != 1 || entries[0].Key != "OPENAI_API_KEY" || entries[0].Value != "" {
		t.Errorf(".env.example for codex declares %+v, want only OPENAI_API_KEY, empty", entries)
	}
	for _, want := range []string{"# CLAUDE_CODE_OAUTH_TOKEN=", "# ANTHROPIC_API_KEY=", "claude setup-token", "cp .moat/.env.example .moat/.env", "empty value"} {
		if !strings.Contains(example, want) {
			t.Errorf(".env.example lacks %q:\n%s", want, example)
		}
	}
	// Copied to .moat/.env as told, it takes the key from the environment.
	if err := os.WriteFile(filepath.Join(root, ".moat", ".env"), []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := config.LoadEnv(root, func(k string) (string, bool) { return "from-env-" + k, true })
	if err != nil || !reflect.DeepEqual(env.Values, map[string]string{"OPENAI_API_KEY": "from-env-OPENAI_API_KEY"}) {
		t.Errorf("LoadEnv of the copied example = %+v, %v", env, err)
	}
}

func TestInitEnvExamplePerAgent(t *testing.T) {
	for agent, want := range map[string][]string{
		"claude":  {"CLAUDE_CODE_OAUTH_TOKEN"},
		"codex":   {"OPENAI_API_KEY"},
		"command": nil,
	} {
		root := initGitRepo(t)
		args := []string{"--repo", root, "--agent", agent}
		if agent == "command" {
			args = append(args, "--agent-cmd", "sh agent.sh")
		}
		if _, _, err := execInit(t, false, "", args...); err != nil {
			t.Fatalf("init --agent %s: %v", agent, err)
		}
		example := readInitFiles(t, root)[".moat/.env.example"]
		entries, err := dotenv.Parse(strings.NewReader(example))
		if err != nil {
			t.Fatalf("--agent %s: .env.example does not parse: %v", agent, err)
		}
		var keys []string
		for _, e := range entries {
			keys = append(keys, e.Key)
		}
		if !reflect.DeepEqual(keys, want) {
			t.Errorf("--agent %s: .env.example declares %v, want %v", agent, keys, want)
		}
		for _, k := range []string{"CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"} {
			if !strings.Contains(example, k+"=") {
				t.Errorf("--agent %s: .env.example does not mention %s", agent, k)
			}
		}
		cfg := loadInitConfig(t, root)
		if cfg.Agent != agent || (agent == "command") != (cfg.AgentCmd == "sh agent.sh") {
			t.Errorf("--agent %s: config %+v", agent, cfg)
		}
	}
}

func TestInitWorkingDirectory(t *testing.T) {
	root := initGitRepo(t)
	t.Chdir(filepath.Join(root, "sub"))
	if _, _, err := execInit(t, false, "", "-y"); err != nil {
		t.Fatal(err)
	}
	cfg := loadInitConfig(t, root)
	if cfg.Sandbox != "exedev" || cfg.Agent != "claude" || cfg.Model != "" {
		t.Errorf("defaults: %+v, want exedev and claude, no model", cfg)
	}
}

func TestInitSkipsExisting(t *testing.T) {
	root := initGitRepo(t)
	if _, _, err := execInit(t, false, "", "--repo", root); err != nil {
		t.Fatal(err)
	}
	// The user edits the prompt; a second init must not lose it.
	if err := os.WriteFile(filepath.Join(root, ".moat", "prompt.md"), []byte("my task\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := readInitFiles(t, root)
	stdout, _, err := execInit(t, false, "", "--repo", root, "--agent", "codex")
	if err != nil {
		t.Fatalf("second init: %v", err)
	}
	for _, want := range append(initFiles, "Nothing to write", "already exist", "--force") {
		if !strings.Contains(stdout, want) {
			t.Errorf("output does not mention %q:\n%s", want, stdout)
		}
	}
	if after := readInitFiles(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("a second init changed the files")
	}

	// The missing files are written, the others named as skipped.
	for _, f := range initFiles[:3] {
		os.Remove(filepath.Join(root, f))
	}
	os.WriteFile(filepath.Join(root, ".moat", ".gitignore"), []byte("mine\n"), 0o644)
	stdout, _, err = execInit(t, false, "", "--repo", root)
	if err != nil {
		t.Fatalf("init with only .moat/.gitignore present: %v", err)
	}
	if !strings.Contains(stdout, "Skipped, as they exist (moat init --force overwrites them): .moat/.gitignore\n") {
		t.Errorf("init does not name the file it skipped:\n%s", stdout)
	}
	if b, _ := os.ReadFile(filepath.Join(root, ".moat", ".gitignore")); string(b) != "mine\n" {
		t.Errorf("init overwrote .moat/.gitignore without --force: %q", b)
	}
	for _, f := range initFiles[:3] {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("init did not write the missing %s: %v", f, err)
		}
	}
}

func TestInitKeepsRestOfMoatDir(t *testing.T) {
	root := initGitRepo(t)
	logFile := filepath.Join(root, ".moat", "logs", "old.log")
	os.MkdirAll(filepath.Dir(logFile), 0o755)
	if err := os.WriteFile(logFile, []byte("log\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := execInit(t, false, "", "--repo", root); err != nil {
		t.Fatalf("init with an existing .moat/logs: %v", err)
	}
	if b, err := os.ReadFile(logFile); err != nil || string(b) != "log\n" {
		t.Errorf("init touched .moat/logs: %q %v", b, err)
	}
}

func TestInitForce(t *testing.T) {
	root := initGitRepo(t)
	if _, _, err := execInit(t, false, "", "--repo", root); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(root, ".moat", "config.toml")
	if err := os.WriteFile(cfgPath, []byte("garbage = [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(cfgPath, 0o600)
	logFile := filepath.Join(root, ".moat", "logs", "keep.log")
	os.MkdirAll(filepath.Dir(logFile), 0o755)
	os.WriteFile(logFile, []byte("keep"), 0o644)

	stdout, _, err := execInit(t, false, "", "--repo", root, "--force", "--sandbox", "ssh://me@devbox:2222", "--agent", "command", "--agent-cmd", "./agent.sh")
	if err != nil {
		t.Fatalf("init --force: %v", err)
	}
	if !strings.Contains(stdout, "overwriting") {
		t.Errorf("init --force does not say it overwrote:\n%s", stdout)
	}
	cfg := loadInitConfig(t, root)
	if cfg.Sandbox != "ssh://me@devbox:2222" || cfg.Agent != "command" || cfg.AgentCmd != "./agent.sh" {
		t.Errorf("config after --force: %+v", cfg)
	}
	if st, _ := os.Stat(cfgPath); st.Mode().Perm() != 0o644 {
		t.Errorf("config.toml mode %o after --force, want 644", st.Mode().Perm())
	}
	if b, _ := os.ReadFile(logFile); string(b) != "keep" {
		t.Error("init --force touched .moat/logs")
	}
	leftovers, _ := filepath.Glob(filepath.Join(root, ".moat", ".moat-init-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestInitOutsideRepository(t *testing.T) {
	testenv.RequireBinary(t, "git", "git")
	dir := t.TempDir()
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
	_, _, err := execInit(t, false, "", "--repo", dir)
	if err == nil || !strings.Contains(err.Error(), "not inside a git repository") || !strings.Contains(err.Error(), "git init") {
		t.Fatalf("init outside a repository: %v; want the git init hint", err)
	}
	var ue *usageError
	if errors.As(err, &ue) {
		t.Errorf("outside a repository is a usage error, want a plain failure: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".moat")); err == nil {
		t.Error("init outside a repository wrote .moat/")
	}
}

func TestInitBadFlags(t *testing.T) {
	root := initGitRepo(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--agent", "gpt"}, `--agent "gpt": ` + registry.Agents.Check("gpt").Error()},
		{[]string{"--sandbox", "docker"}, `--sandbox "docker": want "exedev", "emulator", "local" or "ssh://[user@]host[:port]"`},
		{[]string{"--sandbox", "ssh://me@"}, "no host"},
		{[]string{"--agent", "command"}, "--agent command needs --agent-cmd"},
		{[]string{"--agent", "claude", "--agent-cmd", "x"}, "--agent-cmd is for --agent command"},
		{[]string{"--repo", filepath.Join(root, "nope")}, "no such directory"},
		{[]string{"extra"}, "unknown command"},
	} {
		args := tc.args
		if args[0] != "--repo" {
			args = append([]string{"--repo", root}, args...)
		}
		for _, terminal := range []bool{false, true} {
			if terminal && strings.Join(tc.args, " ") == "--agent command" {
				continue // on a terminal, init asks for the command
			}
			stdout, _, err := execInit(t, terminal, "", args...)
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("init %v (terminal %v): %v; want a usage error containing %q", tc.args, terminal, err, tc.want)
			}
			if stdout != "" {
				t.Errorf("init %v asked a question before checking its flags:\n%s", tc.args, stdout)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(root, ".moat")); err == nil {
		t.Error("init with bad flags wrote .moat/")
	}
}

func TestInitInteractive(t *testing.T) {
	root := initGitRepo(t)
	// An invalid sandbox, then a valid one; Enter for the agent; a model.
	stdout, _, err := execInit(t, true, "docker\nlocal\n\nopus\n", "--repo", root)
	if err != nil {
		t.Fatalf("interactive init: %v\n%s", err, stdout)
	}
	for _, want := range []string{
		`"docker": want "exedev", "emulator", "local" or "ssh://[user@]host[:port]"; try again.`,
		"Agent (" + strings.Join(registry.Agents.Names(), ", ") + ") [claude]: ",
		"Model (empty for the agent's default) []: ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the conversation lacks %q:\n%s", want, stdout)
		}
	}
	if n := strings.Count(stdout, "Sandbox (exedev, emulator, local, ssh://[user@]host[:port]) [exedev]: "); n != 2 {
		t.Errorf("asked for the sandbox %d times, want 2:\n%s", n, stdout)
	}
	cfg := loadInitConfig(t, root)
	if cfg.Sandbox != "local" || cfg.Agent != "claude" || cfg.Model != "opus" {
		t.Errorf("config after the conversation: %+v", cfg)
	}
}

func TestInitInteractiveCommandAgent(t *testing.T) {
	root := initGitRepo(t)
	// The sandbox comes from its flag; a bad agent, then command; an empty
	// command is refused; no model is asked for.
	stdout, _, err := execInit(t, true, "gpt\ncommand\n\nsh agent.sh\n", "--repo", root, "--sandbox", "emulator")
	if err != nil {
		t.Fatalf("interactive init: %v\n%s", err, stdout)
	}
	if strings.Contains(stdout, "Sandbox (") || strings.Contains(stdout, "Model (") {
		t.Errorf("asked for the sandbox or the model:\n%s", stdout)
	}
	if n := strings.Count(stdout, "Agent command (it reads the prompt on stdin) []: "); n != 2 {
		t.Errorf("asked for the agent command %d times, want 2:\n%s", n, stdout)
	}
	if !strings.Contains(stdout, `"gpt": `+registry.Agents.Check("gpt").Error()+"; try again.") {
		t.Errorf("no complaint about the bad agent:\n%s", stdout)
	}
	cfg := loadInitConfig(t, root)
	if cfg.Sandbox != "emulator" || cfg.Agent != "command" || cfg.AgentCmd != "sh agent.sh" {
		t.Errorf("config after the conversation: %+v", cfg)
	}
}

func TestInitInteractiveYesAndEOF(t *testing.T) {
	root := initGitRepo(t)
	// Input that ends before the questions are answered writes nothing.
	_, _, err := execInit(t, true, "emulator\n", "--repo", root)
	if err == nil || !strings.Contains(err.Error(), "input ended") || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("init with input ending early: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, ".moat", "config.toml")); err == nil {
		t.Fatal("init wrote config.toml with questions unanswered")
	}
	// --yes asks nothing, even on a terminal.
	stdout, _, err := execInit(t, true, "", "--repo", root, "-y", "--model", "o3", "--agent", "codex")
	if err != nil {
		t.Fatalf("init -y: %v", err)
	}
	if strings.Contains(stdout, "]: ") {
		t.Errorf("init -y asked something:\n%s", stdout)
	}
	if cfg := loadInitConfig(t, root); cfg.Sandbox != "exedev" || cfg.Agent != "codex" || cfg.Model != "o3" {
		t.Errorf("config after init -y: %+v", cfg)
	}
}

// TestInitInteractiveInterrupt: Ctrl-C at a question ends init at once,
// without writing anything, even though nothing is ever typed.
func TestInitInteractiveInterrupt(t *testing.T) {
	root := initGitRepo(t)
	cmd := &cobra.Command{Use: "moat", SilenceUsage: true, SilenceErrors: true}
	cmd.AddCommand(newInitCmdWith(func(io.Reader, io.Writer) bool { return true }))
	stdin, typing := io.Pipe() // a terminal nobody types on
	defer typing.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Ctrl-C once a question is up: earlier, it would stop git instead.
	out := &cancelAtPrompt{cancel: cancel}
	cmd.SetArgs([]string{"init", "--repo", root})
	cmd.SetIn(stdin)
	cmd.SetOut(out)
	cmd.SetErr(out)
	// If no question ever comes, end the input so the test fails, not hangs.
	safety := time.AfterFunc(30*time.Second, func() { typing.Close() })
	defer safety.Stop()
	err := cmd.ExecuteContext(ctx)
	if !errors.Is(err, errInterrupted) {
		t.Fatalf("init after Ctrl-C: %v, want errInterrupted\n%s", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(root, ".moat")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".moat exists after an interrupted init: %v", err)
	}
}

// cancelAtPrompt collects output and calls cancel once a question
// ("...[default]: ") has been printed.
type cancelAtPrompt struct {
	mu     sync.Mutex // the command writes while the test may read
	buf    bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelAtPrompt) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), "]: ") {
		w.cancel()
	}
	return n, err
}

func (w *cancelAtPrompt) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestTryExample: the offline try is the same in 'moat init's next steps,
// the first example of 'moat run --help' (run as pasted by the
// first_run_example script) and the README.
func TestTryExample(t *testing.T) {
	if got := strings.Join(strings.Fields(strings.ReplaceAll(tryCommand, "\\\n", " ")), " "); got != tryExample {
		t.Errorf("moat init's try:\n  %s\nis not moat run --help's first example:\n  %s", got, tryExample)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	first := ""
	for l := range strings.Lines(string(readme)) {
		if strings.HasPrefix(l, "moat run ") {
			first = strings.TrimSpace(l)
			break
		}
	}
	if first != tryExample {
		t.Errorf("the README's first moat run example is\n  %s\nnot moat run --help's first:\n  %s", first, tryExample)
	}
}
