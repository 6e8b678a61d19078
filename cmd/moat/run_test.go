package main

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatdev/moat/internal/config"
)

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func scratchRepo(t *testing.T) string {
	t.Helper()
	repo := t.TempDir()
	gitIn(t, repo, "init", "-q", "-b", "main")
	gitIn(t, repo, "config", "user.name", "CLI User")
	gitIn(t, repo, "config", "user.email", "cli@example.com")
	greeter, err := os.ReadFile("../../examples/agents/greeter.sh")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(repo, "greeter.sh"), greeter, 0o755)
	gitIn(t, repo, "add", ".")
	gitIn(t, repo, "commit", "-q", "-m", "initial")
	return repo
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

// TestRunCommand runs `moat run` as a user types it, on the in-process
// exe.dev emulator and on a local sandbox.
func TestRunCommand(t *testing.T) {
	for _, sb := range []string{"emulator", "local"} {
		t.Run(sb, func(t *testing.T) {
			repo := scratchRepo(t)
			out, errOut, err := runCLI(t, "run", "--repo", repo, "--sandbox", sb, "--agent", "command", "--agent-cmd", "sh greeter.sh", "-p", "hi from the CLI")
			if err != nil {
				t.Fatalf("moat run: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
			}
			for _, want := range []string{"greeter: I was asked: hi from the CLI", "1 commit(s) landed on main", "greeter: hi from the CLI", "phases: prepare"} {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if got := gitIn(t, repo, "log", "-1", "--format=%s", "main"); got != "greeter: hi from the CLI" {
				t.Errorf("main's tip: %q", got)
			}
		})
	}
}

func TestRunCommandErrors(t *testing.T) {
	repo := scratchRepo(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--repo", repo, "--agent", "command", "-p", "x"}, "--agent command needs --agent-cmd"},
		{[]string{"run", "--repo", repo, "--sandbox", "bogus", "--agent", "command", "--agent-cmd", "true", "-p", "x"}, `--sandbox "bogus": want "exedev"`},
		{[]string{"run", "--repo", repo, "--agent", "gpt", "-p", "x"}, `unknown agent "gpt"`},
		{[]string{"run", "--repo", repo, "--sandbox", "local", "--agent", "command", "--agent-cmd", "true"}, "no prompt: give -p PROMPT or -f FILE"},
		{[]string{"run", "--repo", repo, "--sandbox", "local", "--agent", "command", "--agent-cmd", "true", "-p", "x", "--arg", "novalue"}, "want KEY=VALUE"},
		{[]string{"run", "--repo", repo, "--sandbox", "local", "--agent", "command", "--agent-cmd", "true", "-p", "x", "--env", "MOAT_SURELY_UNSET_VAR"}, "is not set in your environment"},
		{[]string{"run", "--repo", repo, "--sandbox", "local", "--agent", "command", "--agent-cmd", "echo oops >&2; exit 4", "-p", "x"}, "exited with code 4"},
	} {
		_, _, err := runCLI(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("moat %s: error %v, want it to say %q", strings.Join(c.args[3:], " "), err, c.want)
		}
	}
}

// TestSandboxEnvSecrets: which keys go to the sandbox as secrets
// (redacted) and which as ordinary values, and which source wins.
func TestSandboxEnvSecrets(t *testing.T) {
	t.Setenv("ANTHROPIC_API_KEY", "from-host-api")
	t.Setenv("HOST_PLAIN", "plain-from-host")
	t.Setenv("HOST_SECRET_VAR", "secret-from-host")
	t.Setenv("FLAG_SECRET", "flag-from-host")
	p := &project{
		Env:    config.Env{Values: map[string]string{"DOTENV_VALUE": "in-dotenv", "MODE": "from-dotenv"}},
		Config: config.Config{Env: []string{"HOST_PLAIN"}, SecretEnv: []string{"HOST_SECRET_VAR", "GIVEN_BY_FLAG"}},
	}
	env, secret, warnings, err := sandboxEnv(p,
		[]string{"MODE=delbase", "GOFLAGS=-count=1", "GH_TOKEN=ghp-123456", "GIVEN_BY_FLAG=by-flag"},
		[]string{"FLAG_SECRET", "INLINE=inline-secret", "PIN=123"},
		[]string{"ANTHROPIC_API_KEY", "UNSET_CREDENTIAL_VAR"})
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := map[string]string{"GOFLAGS": "-count=1", "GH_TOKEN": "ghp-123456", "HOST_PLAIN": "plain-from-host"}
	wantSecret := map[string]string{
		"ANTHROPIC_API_KEY": "from-host-api", "DOTENV_VALUE": "in-dotenv",
		"MODE":            "delbase", // a key of .moat/.env stays secret, whoever gives its value
		"HOST_SECRET_VAR": "secret-from-host", "GIVEN_BY_FLAG": "by-flag",
		"FLAG_SECRET": "flag-from-host", "INLINE": "inline-secret", "PIN": "123",
	}
	if !maps.Equal(env, wantEnv) {
		t.Errorf("env = %v\nwant %v", env, wantEnv)
	}
	if !maps.Equal(secret, wantSecret) {
		t.Errorf("secret = %v\nwant %v", secret, wantSecret)
	}
	// GIVEN_BY_FLAG is not in the host environment, but a flag gives it:
	// no warning for it; PIN is too short to redact: one.
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "PIN is a secret of fewer than 6 bytes") {
		t.Errorf("warnings = %q", warnings)
	}
}
