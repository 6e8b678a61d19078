package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/registry"
)

// repoWith returns a directory holding .moat/<name> with the given content.
func repoWith(t *testing.T, name, content string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, ".moat"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, ".moat", name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestLoadMissing(t *testing.T) {
	cfg, found, err := Load(t.TempDir())
	if err != nil || found || !reflect.DeepEqual(cfg, Config{}) {
		t.Fatalf("Load(empty dir) = %+v, %v, %v; want zero, false, nil", cfg, found, err)
	}
}

func TestLoadFull(t *testing.T) {
	root := repoWith(t, "config.toml", `
sandbox = "ssh://me@build.example.com:2222"
agent = "command"
model = "m"
agent_cmd = "sh agent.sh"
network = "none"
prompt_file = "p.md"
max_iterations = 7
idle_timeout = "5m"
completion_timeout = "1m30s"
exit_grace = "3s"
branch = "moat/work"
copy = [".env.local", "node_modules"]
env = ["GOFLAGS", "_X1"]
secret_env = ["DATABASE_URL"]

[hooks]
on_worktree_ready = ["make gen"]
on_sandbox_ready = ["npm ci", "go mod download"]

[exedev]
lobby = "localhost:2222"
identity_file = "~/.ssh/id_test"
known_hosts_file = "/tmp/kh"
image = "ubuntu:24.04"
cpu = 4
memory = "8GB"
disk = "40GB"
tags = ["ci", "moat"]
`)
	cfg, found, err := Load(root)
	if err != nil || !found {
		t.Fatalf("Load: %v (found %v)", err, found)
	}
	want := Config{
		Sandbox: "ssh://me@build.example.com:2222", Network: "none", Agent: "command", Model: "m", AgentCmd: "sh agent.sh",
		PromptFile: "p.md", MaxIterations: 7,
		IdleTimeout: Duration{5 * time.Minute}, CompletionTimeout: Duration{90 * time.Second}, ExitGrace: Duration{3 * time.Second},
		Branch: "moat/work", Copy: []string{".env.local", "node_modules"}, Env: []string{"GOFLAGS", "_X1"},
		SecretEnv: []string{"DATABASE_URL"},
		Hooks:     Hooks{OnWorktreeReady: []string{"make gen"}, OnSandboxReady: []string{"npm ci", "go mod download"}},
		ExeDev: ExeDev{Lobby: "localhost:2222", IdentityFile: "~/.ssh/id_test", KnownHostsFile: "/tmp/kh",
			Image: "ubuntu:24.04", CPU: 4, Memory: "8GB", Disk: "40GB", Tags: []string{"ci", "moat"}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load\n got %+v\nwant %+v", cfg, want)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
		key      string
		want     string
	}{
		{"syntax", "agent = \"claude\"\nsandbox = \"exedev\n", 2, "sandbox", "strings cannot contain newlines"},
		{"unquoted string", "[exedev]\nimage = ubuntu\n", 2, "exedev.image", "; put the value of exedev.image in quotes"},
		{"unquoted duration", "idle_timeout = 10m\n", 1, "", `; write durations in quotes, such as idle_timeout = "10m"`},
		{"unknown key", "sandbox = \"local\"\nmax_iteration = 3\n", 2, "max_iteration",
			`unknown key "max_iteration"; did you mean "max_iterations"? (known: sandbox, network, agent, model, agent_cmd, prompt_file, max_iterations, idle_timeout, completion_timeout, exit_grace, branch, max_file_size, max_sync_size, max_files, copy, env, secret_env, hooks, exedev)`},
		{"unknown dashed key", "idle-timeout = \"1m\"\n", 1, "idle-timeout", `did you mean "idle_timeout"?`},
		{"unknown key far from any", "colour = \"blue\"\n", 1, "colour", `unknown key "colour" (known: sandbox,`},
		{"unknown key in table", "[exedev]\nimage = \"x\"\ncpus = 2\n", 3, "exedev.cpus",
			`unknown key "exedev.cpus"; did you mean "exedev.cpu"? (known in [exedev]: lobby, identity_file, known_hosts_file, image, cpu, memory, disk, tags, ready_timeout)`},
		{"key in the wrong table", "agent = \"codex\"\ncpu = 2\n", 2, "cpu", `did you mean "exedev.cpu"?`},
		{"unknown table", "[docker]\nimage = \"x\"\n", 1, "docker", `unknown key "docker"`},
		{"unknown dotted key", "exedev.flavour = \"x\"\n", 1, "exedev.flavour", `unknown key "exedev.flavour"`},
		{"string for int", "max_iterations = \"5\"\n", 1, "max_iterations", `max_iterations = "5": want a whole number, such as 4, not a string`},
		{"float for int", "[exedev]\ncpu = 1.5\n", 2, "exedev.cpu", `exedev.cpu = 1.5: want a whole number, such as 4, not a number with a fraction`},
		{"int for string", "sandbox = 1\n", 1, "sandbox", `sandbox = 1: want a string in quotes, such as "text", not a whole number`},
		{"bad duration", "\nidle_timeout = \"10\"\n", 2, "idle_timeout", `idle_timeout = "10": want a duration such as "10m" or "90s"`},
		{"int duration", "completion_timeout = 60\n", 1, "completion_timeout", `completion_timeout = 60: want a duration such as "10m" or "90s", not a whole number`},
		{"bad size", "max_file_size = \"big\"\n", 1, "max_file_size", `max_file_size = "big": want a size such as "100MiB" or "1GiB"`},
		{"int size", "max_sync_size = 1024\n", 1, "max_sync_size", `max_sync_size = 1024: want a size such as "100MiB" or "1GiB", not a whole number`},
		{"negative file count", "max_files = -1\n", 1, "max_files", `max_files is negative`},
		{"string for array", "copy = \".env\"\n", 1, "copy", `copy = ".env": want an array of strings, such as ["a", "b"], not a string`},
		{"bad array item", "tags = 1\n[exedev]\ntags = [\"a\", 2]\n", 1, "tags", `unknown key "tags"; did you mean "exedev.tags"?`},
		{"bad array item in table", "[exedev]\ntags = [\"a\", 2]\n", 2, "exedev.tags", `exedev.tags: want an array of strings, such as ["a", "b"], but item 2 is a whole number`},
		{"string for table", "hooks = \"npm ci\"\n", 1, "hooks", `hooks = "npm ci": want a table, written [hooks] with its keys on the lines below, not a string`},
		{"array of tables", "[[hooks]]\non_sandbox_ready = [\"x\"]\n", 1, "hooks", "not an array of tables"},
		{"inline table", "hooks = { on_sandbox_ready = [1] }\n", 1, "hooks.on_sandbox_ready", "but item 1 is a whole number"},
		{"leaf used as table", "sandbox.name = \"x\"\n", 1, "sandbox", "sandbox: want a string in quotes"},
		{"bad sandbox", "sandbox = \"docker\"\n", 1, "sandbox", `sandbox = "docker": want "exedev", "emulator", "local" or "ssh://[user@]host[:port]"`},
		{"ssh without host", "sandbox = \"ssh://me@\"\n", 1, "sandbox", `sandbox = "ssh://me@": no host`},
		{"ssh bad port", "sandbox = \"ssh://h:x\"\n", 1, "sandbox", "the port is not a number"},
		{"bad agent", "agent = \"gpt\"\n", 1, "agent", `agent = "gpt": want "claude", "codex", "command", "pi", "opencode", "copilot", "cursor" or "gemini"`},
		{"bad network", "sandbox = \"local\"\nnetwork = \"bridge\"\n", 2, "network", `network = "bridge": want "isolated" (its own network, out through slirp4netns), "none" (no network) or "host" (this computer's network)`},
		{"command without agent_cmd", "sandbox = \"local\"\nagent = \"command\"\n", 2, "agent", `agent = "command" needs agent_cmd`},
		{"negative iterations", "max_iterations = -1\n", 1, "max_iterations", "max_iterations is negative"},
		{"negative timeout", "idle_timeout = \"-1s\"\n", 1, "idle_timeout", "idle_timeout is negative"},
		{"negative completion timeout", "completion_timeout = \"-1s\"\n", 1, "completion_timeout", "completion_timeout is negative"},
		{"negative exit grace", "exit_grace = \"-1s\"\n", 1, "exit_grace", "exit_grace is negative"},
		{"negative cpu", "[exedev]\ncpu = -2\n", 2, "exedev.cpu", "exedev.cpu is negative"},
		{"bad env name", "env = [\"OK\", \"NOT-OK\"]\n", 1, "env", `env item 2 = "NOT-OK" is not a variable name`},
		{"env with value", "env = [\"TOKEN=s3cr3t\"]\n", 1, "env", "env item 1 is KEY=VALUE: env lists only names"},
		{"secret_env with value", "secret_env = [\"DB_URL\", \"TOKEN=s3cr3t\"]\n", 1, "secret_env", "secret_env item 2 is KEY=VALUE: secret_env lists only names"},
		{"bad secret_env name", "secret_env = [\"1X\"]\n", 1, "secret_env", `secret_env item 1 = "1X" is not a variable name`},
		{"empty hook", "[hooks]\non_sandbox_ready = [\"npm ci\", \" \"]\n", 2, "hooks.on_sandbox_ready", "hooks.on_sandbox_ready item 2 is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, found, err := Load(repoWith(t, "config.toml", tc.in))
			if err == nil {
				t.Fatalf("Load(%q) = %+v, want an error", tc.in, cfg)
			}
			if !found {
				t.Errorf("found = false for an existing file")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v, want an *Error", err, err)
			}
			if e.File != ".moat/config.toml" || e.Line != tc.line || e.Key != tc.key {
				t.Errorf("error at %s:%d key %q, want .moat/config.toml:%d key %q (%v)", e.File, e.Line, e.Key, tc.line, tc.key, err)
			}
			prefix := ".moat/config.toml:"
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to start with %q and contain %q", err, prefix, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q repeats a value", err)
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, ".moat", "config.toml"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, found, err := Load(root)
	if err == nil || !found || !strings.HasPrefix(err.Error(), ".moat/config.toml: ") {
		t.Fatalf("Load(config.toml is a directory) = found %v, %v", found, err)
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil || d.Duration != 90*time.Minute {
		t.Fatalf("UnmarshalText(1h30m) = %v, %v", d, err)
	}
	if b, err := d.MarshalText(); err != nil || string(b) != "1h30m0s" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
	err := d.UnmarshalText([]byte("10"))
	if err == nil || err.Error() != `"10": want a duration such as "10m" or "90s"` {
		t.Fatalf("UnmarshalText(10) = %v", err)
	}
}

// templateCases are every sandbox and registered agent, with and without a model.
func templateCases() []TemplateOptions {
	var cases []TemplateOptions
	for _, sb := range []string{"exedev", "emulator", "local", "ssh://me@build.example.com:2222"} {
		for _, k := range registry.Agents.Kinds() {
			for _, model := range []string{"", `opus "4" \ ü`} {
				o := TemplateOptions{Sandbox: sb, Agent: k.Name, Model: model}
				if k.TakesCommand {
					o.AgentCmd = `sh -c 'echo "hi"'`
				}
				cases = append(cases, o)
			}
		}
	}
	return cases
}

func TestTemplateLoads(t *testing.T) {
	for _, o := range templateCases() {
		cfg, found, err := Load(repoWith(t, "config.toml", Template(o)))
		if err != nil || !found {
			t.Fatalf("Load(Template(%+v)): %v", o, err)
		}
		want := Config{Sandbox: o.Sandbox, Agent: o.Agent, Model: o.Model, AgentCmd: o.AgentCmd,
			PromptFile: ".moat/prompt.md", MaxIterations: 5}
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("Load(Template(%+v))\n got %+v\nwant %+v", o, cfg, want)
		}
	}
	cfg, _, err := Load(repoWith(t, "config.toml", Template(TemplateOptions{})))
	if err != nil || cfg.Sandbox != "exedev" || cfg.Agent != "claude" {
		t.Errorf("Template(zero options) loads as %+v, %v; want exedev and claude", cfg, err)
	}
}

var commentedKey = regexp.MustCompile(`(?m)^# ([a-z_]+ = .*)$`)

// TestTemplateCoversSchema checks that the template names every key once,
// and that its commented-out defaults are valid: uncommenting all of them
// still loads.
func TestTemplateCoversSchema(t *testing.T) {
	for _, o := range templateCases() {
		text := Template(o)
		all := commentedKey.ReplaceAllString(text, "$1")
		if all == text {
			t.Fatal("the template has no commented-out keys")
		}
		cfg, _, err := Load(repoWith(t, "config.toml", all))
		if err != nil {
			t.Fatalf("Template(%+v) with every key uncommented: %v\n%s", o, err, all)
		}
		if cfg.Sandbox != o.Sandbox || cfg.Agent != o.Agent || cfg.ExeDev.Lobby != "exe.dev" || cfg.IdleTimeout.Duration != 10*time.Minute || cfg.CompletionTimeout.Duration != time.Minute {
			t.Errorf("uncommented template loads as %+v", cfg)
		}
		table := ""
		seen := map[string]int{}
		for _, line := range strings.Split(all, "\n") {
			if strings.HasPrefix(line, "[") {
				table = strings.Trim(line, "[]")
				seen[table]++
				continue
			}
			if k, _, ok := strings.Cut(line, " = "); ok && !strings.HasPrefix(line, "#") {
				if table != "" {
					k = table + "." + k
				}
				seen[k]++
			}
		}
		for _, k := range Keys() {
			if seen[k] != 1 {
				t.Errorf("Template(%+v) has key %q %d times, want once", o, k, seen[k])
			}
			delete(seen, k)
		}
		if len(seen) > 0 {
			t.Errorf("Template(%+v) has keys the schema lacks: %v", o, seen)
		}
	}
}

func TestLoadEnv(t *testing.T) {
	root := repoWith(t, ".env", `# credentials
ANTHROPIC_API_KEY=sk-file
FROM_ENV=
export EMPTY_ENV=
NOWHERE=   # not set anywhere
MULTI="a
b"
`)
	environ := map[string]string{"FROM_ENV": "from-env", "EMPTY_ENV": "", "ANTHROPIC_API_KEY": "ignored", "OTHER": "x"}
	lookup := func(k string) (string, bool) { v, ok := environ[k]; return v, ok }
	env, err := LoadEnv(root, lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := Env{
		Values:   map[string]string{"ANTHROPIC_API_KEY": "sk-file", "FROM_ENV": "from-env", "MULTI": "a\nb"},
		Declared: []string{"ANTHROPIC_API_KEY", "FROM_ENV", "EMPTY_ENV", "NOWHERE", "MULTI"},
		Missing:  []string{"EMPTY_ENV", "NOWHERE"},
		Found:    true,
		Mode:     0o600,
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("LoadEnv\n got %+v\nwant %+v", env, want)
	}

	env, err = LoadEnv(root, nil)
	if err != nil || len(env.Missing) != 3 || env.Values["FROM_ENV"] != "" {
		t.Errorf("LoadEnv(nil lookup) = %+v, %v; want FROM_ENV, EMPTY_ENV and NOWHERE missing", env, err)
	}
}

func TestLoadEnvMissing(t *testing.T) {
	env, err := LoadEnv(t.TempDir(), os.LookupEnv)
	if err != nil || env.Found || len(env.Declared) != 0 {
		t.Fatalf("LoadEnv(no file) = %+v, %v", env, err)
	}
}

func TestLoadEnvLoose(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no permission bits")
	}
	root := repoWith(t, ".env", "A=1\n")
	path := filepath.Join(root, ".moat", ".env")
	for _, tc := range []struct {
		mode  os.FileMode
		loose bool
	}{{0o600, false}, {0o400, false}, {0o640, true}, {0o644, true}, {0o602, true}} {
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		env, err := LoadEnv(root, nil)
		if err != nil || env.Mode != tc.mode || env.Loose != tc.loose {
			t.Errorf("mode %o: LoadEnv = Mode %o Loose %v, %v; want Loose %v", tc.mode, env.Mode, env.Loose, err, tc.loose)
		}
	}
}

func TestLoadEnvErrors(t *testing.T) {
	const secret = "sk-ant-s3cr3t"
	for _, tc := range []struct {
		name, in string
		line     int
		want     string
	}{
		{"pasted token", "A=1\n" + secret + "\n", 2, `no "=" in this line`},
		{"bad key", secret + "=x\n", 1, "not a valid variable name"},
		{"unterminated", "\nTOKEN=\"" + secret + "\n", 2, "TOKEN: the double-quoted value that starts on this line is never closed"},
		{"after quote", "TOKEN='" + secret + "'" + secret + "\n", 1, "TOKEN: text after the closing '"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadEnv(repoWith(t, ".env", tc.in), func(string) (string, bool) { return secret, true })
			var e *Error
			if !errors.As(err, &e) || e.File != ".moat/.env" || e.Line != tc.line {
				t.Fatalf("LoadEnv = %v, want an *Error at .moat/.env:%d", err, tc.line)
			}
			if !strings.HasPrefix(err.Error(), ".moat/.env:") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q leaks the value", err)
			}
		})
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, ".moat", ".env"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadEnv(root, nil); err == nil || !strings.HasPrefix(err.Error(), ".moat/.env: ") {
		t.Errorf("LoadEnv(.env is a directory) = %v", err)
	}
}

func TestLoadQuotedKeys(t *testing.T) {
	cfg, _, err := Load(repoWith(t, "config.toml", "\"sandbox\" = \"local\"\n[\"exedev\"]\n\"cpu\" = 2\n"))
	if err != nil || cfg.Sandbox != "local" || cfg.ExeDev.CPU != 2 {
		t.Fatalf("quoted keys: %+v, %v", cfg, err)
	}
	// A dot inside quotes is part of the name, not a table.
	_, _, err = Load(repoWith(t, "config.toml", "\"exedev.cpu\" = 2\n"))
	if err == nil || !strings.Contains(err.Error(), `unknown key "\"exedev.cpu\""`) {
		t.Fatalf(`"exedev.cpu" = 2: %v`, err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"100MiB": 100 << 20, "1GiB": 1 << 30, "1 gib": 1 << 30, "500KB": 500_000, "2G": 2 << 30, "4096": 4096, "7B": 7, "1TiB": 1 << 40} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1MiB", "1.5GiB", "MiB", "10 parsecs", "99999999999TiB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d; want an error", in, got)
		}
	}
}
