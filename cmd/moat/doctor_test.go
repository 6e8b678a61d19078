package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
)

// docRepo makes a git repository in a temp dir, with .moat/.env holding
// envFile (when not empty, mode perm), and makes it the working directory.
func docRepo(t *testing.T, envFile string, perm os.FileMode) string {
	t.Helper()
	repo := t.TempDir()
	if out, err := exec.Command("git", "init", "-q", repo).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	commit := exec.Command("git", "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "init")
	commit.Dir = repo
	if out, err := commit.CombinedOutput(); err != nil {
		t.Fatalf("git commit: %v\n%s", err, out)
	}
	if envFile != "" {
		os.Mkdir(filepath.Join(repo, ".moat"), 0o755)
		f := filepath.Join(repo, ".moat", ".env")
		if err := os.WriteFile(f, []byte(envFile), perm); err != nil {
			t.Fatal(err)
		}
		os.Chmod(f, perm) // whatever the umask
	}
	t.Chdir(repo)
	return repo
}

// docNoCredentials clears the agents' credentials from the environment.
func docNoCredentials(t *testing.T) {
	for _, k := range []string{"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY", "CODEX_API_KEY"} {
		t.Setenv(k, "")
	}
}

// docLine returns the report line of check name, or fails.
func docLine(t *testing.T, out, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^(ok|info|warn|FAIL|skip) +` + regexp.QuoteMeta(name) + `: .*$`).FindString(out)
	if m == "" {
		t.Fatalf("no %q line in:\n%s", name, out)
	}
	return m
}

func wantStatus(t *testing.T, out, name, status string) string {
	t.Helper()
	line := docLine(t, out, name)
	if !strings.HasPrefix(line, status+" ") {
		t.Errorf("%s: %q; want status %s", name, line, status)
	}
	return line
}

const secretValue = "sk-ant-very-secret-value"

func TestDoctorAllOK(t *testing.T) {
	srv := sbxEmulator(t)
	docNoCredentials(t)
	docRepo(t, "# credentials\nANTHROPIC_API_KEY="+secretValue+"\n", 0o600)

	out, errOut, code := sbxRun(t, "doctor")
	if code != 0 {
		t.Fatalf("doctor: exit %d", code)
	}
	wantStatus(t, out, "git", "ok")
	wantStatus(t, out, "repository", "ok")
	wantIn(t, "config", wantStatus(t, out, "config", "info"), "moat init")
	wantIn(t, "ssh key", wantStatus(t, out, "ssh key", "ok"), srv.KeyFile(), "ED25519 SHA256:")
	wantIn(t, "doctor", out, "why: MOAT_EXEDEV_KEY: the configured key")
	wantIn(t, "ssh agent", wantStatus(t, out, "ssh agent", "info"), "not consulted")
	wantStatus(t, out, "known_hosts", "ok")
	wantIn(t, "exe.dev", wantStatus(t, out, "exe.dev", "ok"), "registered to moat@emulator.local")
	wantIn(t, "credentials", wantStatus(t, out, "credentials", "ok"), "ANTHROPIC_API_KEY set in .moat/.env")
	wantIn(t, "doctor", out, "all needed checks passed")
	wantNotIn(t, "doctor output", out+errOut, secretValue)
	if line := docLine(t, out, "bubblewrap"); strings.HasPrefix(line, "FAIL") {
		t.Errorf("bubblewrap never fails: %q", line)
	}
}

// No key: MOAT_EXEDEV_KEY names a missing file; then no key at all.
func TestDoctorMissingKey(t *testing.T) {
	srv := sbxEmulator(t)
	docNoCredentials(t)
	t.Setenv("ANTHROPIC_API_KEY", secretValue)
	missing := filepath.Join(t.TempDir(), "id_nope")
	t.Setenv("MOAT_EXEDEV_KEY", missing)

	out, errOut, code := sbxRun(t, "doctor")
	if code != 1 {
		t.Errorf("doctor with a missing key: exit %d", code)
	}
	wantIn(t, "ssh key", wantStatus(t, out, "ssh key", "FAIL"), missing, "no such file")
	wantIn(t, "doctor", out, "fix: point MOAT_EXEDEV_KEY at your exe.dev private key")
	wantStatus(t, out, "exe.dev", "skip")
	wantStatus(t, out, "credentials", "ok")
	wantIn(t, "stderr", errOut, errDoctorFailed.Error())
	if calls := srv.Transcript(); len(calls) != 0 {
		t.Errorf("the lobby was asked %d commands with no usable key", len(calls))
	}

	// No key anywhere: empty HOME, no agent, no MOAT_EXEDEV_KEY.
	t.Setenv("MOAT_EXEDEV_KEY", "")
	out, _, code = sbxRun(t, "doctor")
	if code != 1 {
		t.Errorf("doctor with no key: exit %d", code)
	}
	wantIn(t, "ssh key", wantStatus(t, out, "ssh key", "FAIL"), "no SSH key to offer")
	wantIn(t, "doctor", out, "ssh-keygen -t ed25519 -f ~/.ssh/id_exe", "ssh-key add", "no SSH agent is running")
	wantStatus(t, out, "ssh agent", "warn")
}

// ~/.ssh/id_exe is found and used alone; the lobby accepts it.
func TestDoctorIDExe(t *testing.T) {
	srv := sbxEmulator(t)
	docNoCredentials(t)
	t.Setenv("CLAUDE_CODE_OAUTH_TOKEN", secretValue)
	t.Setenv("MOAT_EXEDEV_KEY", "")
	home := os.Getenv("HOME")
	os.Mkdir(filepath.Join(home, ".ssh"), 0o700)
	key, err := os.ReadFile(srv.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	idExe := filepath.Join(home, ".ssh", "id_exe")
	os.WriteFile(idExe, key, 0o600)

	out, _, code := sbxRun(t, "doctor")
	if code != 0 {
		t.Fatalf("doctor with id_exe: exit %d", code)
	}
	wantIn(t, "ssh key", wantStatus(t, out, "ssh key", "ok"), idExe)
	wantIn(t, "doctor", out, "why: "+idExe+" exists: it is used alone")
	wantIn(t, "ssh agent", wantStatus(t, out, "ssh agent", "info"), "not consulted: moat uses "+idExe+" alone")
	wantIn(t, "credentials", wantStatus(t, out, "credentials", "ok"), "CLAUDE_CODE_OAUTH_TOKEN set in your environment")
	wantNotIn(t, "doctor", out, secretValue)
}

func TestDoctorUnregisteredKey(t *testing.T) {
	srv := sbxEmulator(t, exedevtest.WithUnregisteredKey())
	docNoCredentials(t)
	t.Setenv("OPENAI_API_KEY", secretValue)

	out, _, code := sbxRun(t, "doctor", "--agent", "codex")
	if code != 1 {
		t.Errorf("doctor with an unregistered key: exit %d", code)
	}
	wantIn(t, "exe.dev", wantStatus(t, out, "exe.dev", "FAIL"), "not registered")
	wantIn(t, "doctor", out, "fix: register the key with exe.dev: ssh -i "+srv.KeyFile(), "ssh-key add < "+srv.KeyFile()+".pub")
	wantIn(t, "credentials", wantStatus(t, out, "credentials", "ok"), "codex: OPENAI_API_KEY")
	wantIn(t, "doctor", out, "1 check failed")
}

func TestDoctorOffline(t *testing.T) {
	srv := sbxEmulator(t)
	docNoCredentials(t)
	t.Setenv("ANTHROPIC_API_KEY", secretValue)
	out, _, code := sbxRun(t, "doctor", "--offline")
	if code != 0 {
		t.Errorf("doctor --offline: exit %d", code)
	}
	wantIn(t, "exe.dev", wantStatus(t, out, "exe.dev", "skip"), "--offline")
	// Outside a repository: a warning, not a failure.
	wantStatus(t, out, "repository", "warn")
	if calls := srv.Transcript(); len(calls) != 0 {
		t.Errorf("--offline asked the lobby %d commands", len(calls))
	}
}

// Credentials missing, and a .moat/.env others can read.
func TestDoctorCredentials(t *testing.T) {
	sbxEmulator(t)
	docNoCredentials(t)
	repo := docRepo(t, "ANTHROPIC_API_KEY=\nOTHER=x\n", 0o644)

	out, _, code := sbxRun(t, "doctor", "--offline")
	if code != 1 {
		t.Errorf("doctor with no credential: exit %d", code)
	}
	wantIn(t, "credentials", wantStatus(t, out, "credentials", "FAIL"), "CLAUDE_CODE_OAUTH_TOKEN, ANTHROPIC_API_KEY", "none is set")
	wantIn(t, "doctor", out, "fix: give one of them a value in .moat/.env")
	wantIn(t, ".env", wantStatus(t, out, ".moat/.env", "warn"), "0644")
	wantIn(t, "doctor", out, "chmod 600 "+filepath.Join(repo, ".moat", ".env"))

	// With the example file only, the fix is to copy it.
	os.Remove(filepath.Join(repo, ".moat", ".env"))
	os.WriteFile(filepath.Join(repo, ".moat", ".env.example"), []byte("ANTHROPIC_API_KEY=\n"), 0o644)
	out, _, _ = sbxRun(t, "doctor", "--offline")
	wantIn(t, "doctor", out, "fix: cp .moat/.env.example .moat/.env")

	// The command agent needs none.
	out, _, code = sbxRun(t, "doctor", "--offline", "--agent", "command")
	if code != 0 {
		t.Errorf("doctor --agent command: exit %d", code)
	}
	wantStatus(t, out, "credentials", "skip")

	_, _, code = sbxRun(t, "doctor", "--offline", "--agent", "gpt")
	if code != exitUsage {
		t.Errorf("doctor --agent gpt: exit %d, want %d", code, exitUsage)
	}
}

// The sandbox decides which checks run.
func TestDoctorSandboxes(t *testing.T) {
	srv := sbxEmulator(t)
	docNoCredentials(t)
	t.Setenv("MOAT_EXEDEV_KEY", filepath.Join(t.TempDir(), "missing")) // would fail for exedev
	for _, sb := range []string{"local", "emulator"} {
		out, _, code := sbxRun(t, "doctor", "--sandbox", sb, "--agent", "command")
		if code != 0 {
			t.Errorf("doctor --sandbox %s: exit %d", sb, code)
		}
		for _, name := range []string{"ssh key", "ssh agent", "known_hosts", "exe.dev"} {
			wantStatus(t, out, name, "skip")
		}
		wantIn(t, "settings", docLine(t, out, "settings"), "sandbox "+sb)
	}
	if calls := srv.Transcript(); len(calls) != 0 {
		t.Errorf("the lobby was asked %d commands", len(calls))
	}

	// The config file chooses too; a broken one fails.
	repo := docRepo(t, "", 0)
	os.Mkdir(filepath.Join(repo, ".moat"), 0o755)
	os.WriteFile(filepath.Join(repo, ".moat", "config.toml"), []byte("sandbox = \"local\"\nagent = \"command\"\nagent_cmd = \"true\"\n"), 0o644)
	out, _, code := sbxRun(t, "doctor")
	if code != 0 {
		t.Errorf("doctor with sandbox local in the config: exit %d", code)
	}
	wantStatus(t, out, "config", "ok")
	wantStatus(t, out, "ssh key", "skip")

	os.WriteFile(filepath.Join(repo, ".moat", "config.toml"), []byte("no_such_setting = 1\n"), 0o644)
	out, _, code = sbxRun(t, "doctor", "--offline")
	if code != 1 {
		t.Errorf("doctor with a broken config: exit %d", code)
	}
	wantIn(t, "config", wantStatus(t, out, "config", "FAIL"), "config.toml")

	// A bad flag value is a usage error.
	_, _, code = sbxRun(t, "doctor", "--sandbox", "bogus", "--agent", "command")
	if code != exitUsage {
		t.Errorf("doctor --sandbox bogus: exit %d, want %d", code, exitUsage)
	}
}
