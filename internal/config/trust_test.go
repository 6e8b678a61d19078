package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostSettings(t *testing.T) {
	cfg, err := Parse([]byte(`sandbox = "ssh://me@box"
agent = "codex"
model = "m"
max_iterations = 3
idle_timeout = "1m"
branch = "b"
env = ["GITHUB_TOKEN"]
secret_env = ["DATABASE_URL"]
[hooks]
on_worktree_ready = ["make setup"]
on_sandbox_ready = ["npm ci"]
[exedev]
lobby = "evil:22"
identity_file = "/k"
known_hosts_file = "/kh"
cpu = 4
image = "img"
`))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range cfg.HostSettings() {
		keys = append(keys, s.String())
	}
	want := `hooks.on_worktree_ready = ["make setup"]|env = ["GITHUB_TOKEN"]|secret_env = ["DATABASE_URL"]|sandbox = "ssh://me@box"|exedev.lobby = "evil:22"|exedev.identity_file = "/k"|exedev.known_hosts_file = "/kh"`
	if got := strings.Join(keys, "|"); got != want {
		t.Errorf("HostSettings:\n got %s\nwant %s", got, want)
	}
	if rest := cfg.WithoutHostSettings().HostSettings(); len(rest) != 0 {
		t.Errorf("WithoutHostSettings left %v", rest)
	}
	plain := cfg.WithoutHostSettings()
	if plain.Agent != "codex" || plain.ExeDev.CPU != 4 || len(plain.Hooks.OnSandboxReady) != 1 || plain.MaxIterations != 3 {
		t.Errorf("WithoutHostSettings dropped sandbox-only settings: %+v", plain)
	}
	// Only the host network widens what a sandbox reaches.
	for net, needsTrust := range map[string]bool{"host": true, "isolated": false, "none": false} {
		c, err := Parse([]byte(`sandbox = "local"` + "\nnetwork = " + tomlString(net) + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		if hs := c.HostSettings(); (len(hs) == 1 && hs[0].String() == `network = "host"`) != needsTrust || (!needsTrust && len(hs) != 0) {
			t.Errorf("network = %q: HostSettings %v", net, hs)
		}
		if needsTrust && c.WithoutHostSettings().Network != "" {
			t.Errorf("WithoutHostSettings kept network = %q", net)
		}
	}
	// Limits lowered need no trust; raised, they do.
	lim, err := Parse([]byte("max_file_size = \"10MiB\"\nmax_sync_size = \"2GiB\"\nmax_files = 200000\n"))
	if err != nil {
		t.Fatal(err)
	}
	var raised []string
	for _, s := range lim.HostSettings() {
		raised = append(raised, s.String())
	}
	if got := strings.Join(raised, "|"); got != `max_sync_size = "2GiB"|max_files = 200000` {
		t.Errorf("HostSettings of the limits: %s", got)
	}
	if plain := lim.WithoutHostSettings(); plain.MaxFileSize.Bytes != 10<<20 || plain.MaxSyncSize.Bytes != 0 || plain.MaxFiles != 0 {
		t.Errorf("WithoutHostSettings of the limits: %+v", plain)
	}
	for _, tpl := range []TemplateOptions{{}, {Sandbox: "local", Agent: "command", AgentCmd: "x"}} {
		c, err := Parse([]byte(Template(tpl)))
		if err != nil {
			t.Fatal(err)
		}
		if hs := c.HostSettings(); len(hs) != 0 {
			t.Errorf("Template(%+v) needs trust for %v", tpl, hs)
		}
	}
}

func TestReadRepoFile(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("S"), 0o600)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, ".moat"), 0o755)
	os.WriteFile(filepath.Join(root, "in.txt"), []byte("in"), 0o644)
	os.Symlink("../in.txt", filepath.Join(root, ".moat", "inlink"))
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, ".moat", "out"))
	os.Symlink(outside, filepath.Join(root, "outdir"))

	if b, err := ReadRepoFile(root, "in.txt"); err != nil || string(b) != "in" {
		t.Errorf("in.txt: %q %v", b, err)
	}
	if b, err := ReadRepoFile(root, ".moat/inlink"); err != nil || string(b) != "in" {
		t.Errorf("a link inside: %q %v", b, err)
	}
	for _, rel := range []string{".moat/out", "outdir/secret", "../x", "/etc/passwd"} {
		b, err := ReadRepoFile(root, rel)
		var ce *Error
		if !errors.As(err, &ce) || b != nil {
			t.Errorf("ReadRepoFile(%s) = %q, %v; want a refusal", rel, b, err)
		}
	}
	if _, err := ReadRepoFile(root, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if _, err := ReadRepoFile(root, ".moat"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}

func TestCheckPaths(t *testing.T) {
	outside := t.TempDir()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, ".moat"), 0o755)
	os.WriteFile(filepath.Join(root, ".moat", ".env"), []byte("A=1\n"), 0o600)
	os.WriteFile(filepath.Join(root, "p.md"), []byte("p"), 0o644)
	os.Symlink(outside, filepath.Join(root, "out"))
	os.MkdirAll(filepath.Join(root, "dir", "sub"), 0o755)
	os.Symlink("../../p.md", filepath.Join(root, "dir", "sub", "ok"))
	for _, tc := range []struct {
		cfg  Config
		want string // "" is no error
	}{
		{Config{PromptFile: "p.md", Copy: []string{"dir", "missing"}}, ""},
		{Config{PromptFile: filepath.Join(root, "p.md")}, ""},
		{Config{PromptFile: "/etc/passwd"}, "outside the repository"},
		{Config{PromptFile: "../p.md"}, "outside the repository"},
		{Config{PromptFile: "out/x"}, "symbolic link"},
		{Config{PromptFile: ".moat/.env"}, "the credentials"},
		{Config{Copy: []string{"/etc"}}, "not a path inside"},
		{Config{Copy: []string{"out"}}, "symbolic link"},
	} {
		err := tc.cfg.CheckPaths(root)
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckPaths(%+v) = %v; want %q", tc.cfg, err, tc.want)
		}
	}
	os.Symlink(outside, filepath.Join(root, "dir", "sub", "bad"))
	if err := (Config{Copy: []string{"dir"}}).CheckPaths(root); err == nil || !strings.Contains(err.Error(), "dir/sub/bad") {
		t.Errorf("a link out inside a copied directory: %v", err)
	}
}
