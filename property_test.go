package moat

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatdev/moat/agent/command"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
	"github.com/moatdev/moat/sandbox/local"
	"github.com/moatdev/moat/sandbox/sandboxtest"
)

// hostileRepoName ends the last element of the host repository's path,
// after a random hostile name: the worktree, the logs and every git command
// on the host live under it.
const hostileRepoName = "-repo ~ 'single' \"double\" $(echo pwned) `id` %s %n *?[a] \\ é 世界 🚀"

// TestRunByteExact is a property test of a whole run: random hostile
// prompts (text, and PromptArgs values substituted into it), RunOptions.Env
// values and a hostile repository path go through moat.Run with the command
// agent, which writes what it received (its stdin, its environment) into
// files and commits them. The files on the user's branch must hold exactly
// the expected bytes. It runs on the local sandbox (Prompt) and on the
// exe.dev emulator (PromptFile, with a hostile file name). The repository's
// path holds spaces, quotes, $(…), glob characters, non-ASCII and invalid
// UTF-8.
//
// The strings come from sandboxtest.Property: MOAT_PROPERTY_SEED replays a
// run (the seed is logged), MOAT_PROPERTY_N sets how many prompt arguments
// and environment values one run carries (default 6).
func TestRunByteExact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		provider   func(t *testing.T) sandbox.Provider
		promptFile bool
	}{
		{"local", func(t *testing.T) sandbox.Provider { return local.New(local.Config{}) }, false},
		{"exedev", func(t *testing.T) sandbox.Provider { return exedev.New(exedevtest.NewServer(t).Config()) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prop := sandboxtest.NewProperty(t)
			runByteExact(t, prop, tc.provider(t), tc.promptFile)
		})
	}
}

// propertyAgent writes its stdin and the MOAT_PROP_E* variables into
// moat-prop/ and commits them.
func propertyAgent(n int) *command.Agent {
	var b strings.Builder
	b.WriteString("set -e\nmkdir -p moat-prop\ncat > moat-prop/prompt.bin\n")
	for i := range n {
		fmt.Fprintf(&b, "printf '%%s' \"$MOAT_PROP_E%d\" > moat-prop/env%d.bin\n", i, i)
	}
	b.WriteString("git add -A moat-prop\ngit commit -q -m 'what the agent received'\n")
	return command.New(command.Config{Command: b.String()})
}

func runByteExact(t *testing.T, prop *sandboxtest.Property, p sandbox.Provider, promptFile bool) {
	// No line break: git prints paths one per line, and moat refuses such a
	// repository (hostgit.Locate).
	repo := filepath.Join(t.TempDir(), strings.ReplaceAll(prop.Name(), "\n", "")+hostileRepoName)
	if err := os.Mkdir(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	hostGit(t, repo, "init", "-q", "-b", "main")
	hostGit(t, repo, "config", "user.name", "Host User")
	hostGit(t, repo, "config", "user.email", "host@example.com")
	if err := os.WriteFile(filepath.Join(repo, "README.md"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostGit(t, repo, "add", ".")
	hostGit(t, repo, "commit", "-q", "-m", "initial")

	prompt, args, want := hostilePrompt(prop)
	env := map[string]string{}
	files := map[string]string{"moat-prop/prompt.bin": want}
	for i := range prop.N {
		v := prop.String()
		env[fmt.Sprintf("MOAT_PROP_E%d", i)] = v
		files[fmt.Sprintf("moat-prop/env%d.bin", i)] = v
	}
	o := RunOptions{Repo: repo, Sandbox: p, Agent: propertyAgent(prop.N), PromptArgs: args, Env: env, LogFile: "-"}
	if promptFile {
		o.PromptFile = filepath.Join(t.TempDir(), prop.Name())
		if err := os.WriteFile(o.PromptFile, []byte(prompt), 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		o.Prompt = prompt
	}
	res, err := Run(t.Context(), o)
	if err != nil {
		t.Fatalf("Run with prompt %q, args %q, env %q: %v %s", prompt, args, env, err, prop.Replay())
	}
	if len(res.Commits) != 1 || res.Branch != "main" {
		t.Fatalf("result %+v: want one commit on main %s", res, prop.Replay())
	}
	for name, want := range files {
		got := hostGitBytes(t, repo, "show", "main:"+name)
		if !bytes.Equal(got, []byte(want)) {
			t.Errorf("%s on main holds %q, want %q %s", name, got, want, prop.Replay())
		}
	}
	if st := hostGit(t, repo, "status", "--porcelain", "--untracked-files=all"); st != "" {
		t.Errorf("the repository is not clean after the run:\n%s", st)
	}
}

// hostilePrompt returns a prompt made of hostile text and placeholders,
// its arguments (hostile values, some holding placeholders themselves,
// which must stay as they are), and the prompt expected after expansion.
func hostilePrompt(prop *sandboxtest.Property) (prompt string, args map[string]string, want string) {
	args = map[string]string{}
	var p, w strings.Builder
	text := func() {
		for {
			s := prop.String()
			// Text must not hold a placeholder of its own.
			if !strings.Contains(s, "{{") && !strings.Contains(s, "}}") {
				p.WriteString(s)
				w.WriteString(s)
				return
			}
		}
	}
	spaces := []string{"", " ", "\t", "\n ", "  "}
	text()
	for i := range prop.N {
		key := fmt.Sprintf("ARG_%d", i)
		v := prop.String()
		switch i % 3 {
		case 0:
			v += "{{ARG_0}}{{TARGET_BRANCH}}"
		case 1:
			v = "{{ " + v + " }}$1\\0"
		}
		args[key] = v
		fmt.Fprintf(&p, "{{%s%s%s}}", spaces[i%len(spaces)], key, spaces[(i+2)%len(spaces)])
		w.WriteString(v)
		text()
	}
	p.WriteString("{{TARGET_BRANCH}}")
	w.WriteString("main")
	text()
	return p.String(), args, w.String()
}

// hostGit runs git in dir and returns its output, trimmed.
func hostGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return strings.TrimSpace(string(hostGitBytes(t, dir, args...)))
}

// hostGitBytes runs git in dir and returns its stdout as it is.
func hostGitBytes(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "GIT_CONFIG_NOSYSTEM=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}
