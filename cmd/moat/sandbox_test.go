package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
)

// sbxRoot is moat's root command, with sandbox and doctor registered even
// if main.go does not yet.
func sbxRoot() *cobra.Command {
	root := newRootCmd()
	have := map[string]bool{}
	for _, c := range root.Commands() {
		have[c.Name()] = true
	}
	if !have["sandbox"] {
		root.AddCommand(newSandboxCmd())
	}
	if !have["doctor"] {
		root.AddCommand(newDoctorCmd())
	}
	return root
}

// sbxRun runs moat with args as main does and returns its output and exit
// code.
func sbxRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := sbxRoot()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(t.Context())
	code = reportError(&errOut, err, false)
	t.Logf("moat %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return out.String(), errOut.String(), code
}

// sbxEmulator starts an emulator and points moat at it, from a directory
// outside any repository, with an empty HOME and no SSH agent.
func sbxEmulator(t *testing.T, opts ...exedevtest.Option) *exedevtest.Server {
	t.Helper()
	// Leftovers of other runs on this machine (local sandboxes, emulator
	// VMs) stay out of the listings.
	t.Setenv("TMPDIR", t.TempDir())
	srv := exedevtest.NewServer(t, opts...)
	t.Setenv("MOAT_EXEDEV_LOBBY", srv.LobbyAddr())
	t.Setenv("MOAT_EXEDEV_KEY", srv.KeyFile())
	t.Setenv("MOAT_EXEDEV_KNOWN_HOSTS", srv.KnownHostsFile())
	t.Setenv("MOAT_EXEDEV_IMAGE", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Chdir(t.TempDir())
	return srv
}

// sbxLobby runs one lobby command on the emulator, as a user's ssh would.
func sbxLobby(t *testing.T, srv *exedevtest.Server, line string) string {
	t.Helper()
	pem, err := os.ReadFile(srv.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", srv.LobbyAddr(), &ssh.ClientConfig{
		User:            "tester",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(line)
	if err != nil {
		t.Fatalf("lobby %q: %v\n%s", line, err, out)
	}
	return string(out)
}

// sbxNewVM makes a VM on the emulator with the given tags.
func sbxNewVM(t *testing.T, srv *exedevtest.Server, name string, tags ...string) {
	t.Helper()
	line := "new --json --no-email --name=" + name
	for _, tag := range tags {
		line += " --tag=" + tag
	}
	sbxLobby(t, srv, line)
}

func wantIn(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

func wantNotIn(t *testing.T, what, s string, nots ...string) {
	t.Helper()
	for _, w := range nots {
		if strings.Contains(s, w) {
			t.Errorf("%s has %q:\n%s", what, w, s)
		}
	}
}

func TestSandboxLs(t *testing.T) {
	srv := sbxEmulator(t)

	out, _, code := sbxRun(t, "sandbox", "ls")
	if code != 0 || !strings.Contains(out, "no moat VMs") {
		t.Fatalf("ls on an empty account: exit %d, %q", code, out)
	}
	out, _, code = sbxRun(t, "sandbox", "ls", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("ls --json on an empty account: exit %d, %q", code, out)
	}

	sbxNewVM(t, srv, "old-moat-vm", "moat", "nightly")
	sbxNewVM(t, srv, "fresh-moat-vm", "moat")
	sbxNewVM(t, srv, "my-own-vm")
	if err := srv.Backdate("old-moat-vm", 3*time.Hour+5*time.Minute); err != nil {
		t.Fatal(err)
	}

	out, _, code = sbxRun(t, "sandbox", "ls")
	if code != 0 {
		t.Fatalf("ls: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME AGE STATUS IMAGE TAGS" {
		t.Fatalf("ls: want a header and two VMs:\n%s", out)
	}
	// Oldest first, aligned columns.
	if f := strings.Fields(lines[1]); len(f) != 5 || f[0] != "old-moat-vm" || f[1] != "3h" || f[2] != "running" || f[4] != "moat,nightly" {
		t.Errorf("first row %q", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) != 5 || f[0] != "fresh-moat-vm" || !strings.HasSuffix(f[1], "s") {
		t.Errorf("second row %q", lines[2])
	}
	if strings.Index(lines[0], "AGE") != strings.Index(lines[1], "3h") {
		t.Errorf("columns not aligned:\n%s", out)
	}
	wantNotIn(t, "ls", out, "my-own-vm")

	out, _, _ = sbxRun(t, "sandbox", "ls", "--all")
	wantIn(t, "ls --all", out, "my-own-vm", "old-moat-vm", "fresh-moat-vm")

	out, _, code = sbxRun(t, "sandbox", "ls", "--json")
	if code != 0 {
		t.Fatalf("ls --json: exit %d", code)
	}
	var vms []map[string]any
	if err := json.Unmarshal([]byte(out), &vms); err != nil {
		t.Fatalf("ls --json is not a JSON array: %v\n%s", err, out)
	}
	if len(vms) != 2 || vms[0]["name"] != "old-moat-vm" || vms[1]["name"] != "fresh-moat-vm" {
		t.Fatalf("ls --json: %v", vms)
	}
	for _, k := range []string{"name", "status", "image", "tags", "created_at", "age_seconds"} {
		if _, ok := vms[0][k]; !ok {
			t.Errorf("ls --json lacks %q: %v", k, vms[0])
		}
	}
	created, err := time.Parse(time.RFC3339, vms[0]["created_at"].(string))
	if err != nil || time.Since(created) < 3*time.Hour {
		t.Errorf("created_at %v (%v)", vms[0]["created_at"], err)
	}
	if age := vms[0]["age_seconds"].(float64); age < 3*3600+300 || age > 3*3600+400 {
		t.Errorf("age_seconds %v", age)
	}
	if tags := vms[0]["tags"].([]any); len(tags) != 2 || tags[0] != "moat" {
		t.Errorf("tags %v", tags)
	}
}

func TestSandboxRm(t *testing.T) {
	srv := sbxEmulator(t)
	sbxNewVM(t, srv, "moat-one", "moat")
	sbxNewVM(t, srv, "moat-two", "moat")
	sbxNewVM(t, srv, "my-own-vm")

	out, _, code := sbxRun(t, "sandbox", "rm", "moat-one")
	if code != 0 || strings.TrimSpace(out) != "removed moat-one" {
		t.Fatalf("rm moat-one: exit %d, %q", code, out)
	}
	if got := srv.VMs(); slices.Contains(got, "moat-one") {
		t.Fatalf("moat-one still exists: %v", got)
	}

	// Not moat's: refused, and says how to force it.
	_, errOut, code := sbxRun(t, "sandbox", "rm", "my-own-vm")
	if code != 1 {
		t.Errorf("rm of a VM without the moat tag: exit %d", code)
	}
	wantIn(t, "stderr", errOut, "my-own-vm", `no "moat" tag`, "--force")
	if !slices.Contains(srv.VMs(), "my-own-vm") {
		t.Fatal("my-own-vm was removed without --force")
	}

	// Unknown name.
	_, errOut, code = sbxRun(t, "sandbox", "rm", "no-such-vm")
	if code != 1 {
		t.Errorf("rm of an unknown VM: exit %d", code)
	}
	wantIn(t, "stderr", errOut, "no-such-vm", "no such VM")

	// Several: the good ones go, the others are reported.
	out, errOut, code = sbxRun(t, "sandbox", "rm", "no-such-vm", "moat-two", "my-own-vm")
	if code != 1 || strings.TrimSpace(out) != "removed moat-two" {
		t.Errorf("rm of three: exit %d, %q", code, out)
	}
	wantIn(t, "stderr", errOut, "no-such-vm", "my-own-vm", "2 VMs not removed")

	out, _, code = sbxRun(t, "sandbox", "rm", "--force", "my-own-vm")
	if code != 0 || strings.TrimSpace(out) != "removed my-own-vm" {
		t.Errorf("rm --force: exit %d, %q", code, out)
	}
	if got := srv.VMs(); len(got) != 0 {
		t.Errorf("VMs left: %v", got)
	}

	// No name: a usage error.
	_, errOut, code = sbxRun(t, "sandbox", "rm")
	if code != exitUsage {
		t.Errorf("rm without a name: exit %d", code)
	}
	wantIn(t, "stderr", errOut, "at least one sandbox or VM name")
}

func TestSandboxGC(t *testing.T) {
	srv := sbxEmulator(t)
	sbxNewVM(t, srv, "old-moat-vm", "moat")
	sbxNewVM(t, srv, "new-moat-vm", "moat")
	sbxNewVM(t, srv, "old-own-vm")
	for name, d := range map[string]time.Duration{"old-moat-vm": 2 * time.Hour, "old-own-vm": 48 * time.Hour} {
		if err := srv.Backdate(name, d); err != nil {
			t.Fatal(err)
		}
	}
	all := []string{"new-moat-vm", "old-moat-vm", "old-own-vm"}

	out, _, code := sbxRun(t, "sandbox", "gc", "--dry-run")
	if code != 0 {
		t.Fatalf("gc --dry-run: exit %d", code)
	}
	wantIn(t, "gc --dry-run", out, "would remove old-moat-vm (age 2h)", "1 moat VM older than 1h would be removed, 1 kept", "nothing was removed")
	wantNotIn(t, "gc --dry-run", out, "new-moat-vm", "old-own-vm")
	if got := srv.VMs(); !slices.Equal(got, all) {
		t.Fatalf("--dry-run removed VMs: %v", got)
	}

	out, _, code = sbxRun(t, "sandbox", "gc")
	if code != 0 {
		t.Fatalf("gc: exit %d", code)
	}
	wantIn(t, "gc", out, "removed old-moat-vm (age 2h)", "removed 1 moat VM older than 1h, 1 kept")
	if got := srv.VMs(); !slices.Equal(got, []string{"new-moat-vm", "old-own-vm"}) {
		t.Fatalf("after gc: %v", got)
	}

	// Nothing old enough is left.
	out, _, _ = sbxRun(t, "sandbox", "gc", "--older-than", "30m")
	wantIn(t, "gc again", out, "removed 0 moat VMs older than 30m, 1 kept")

	_, _, code = sbxRun(t, "sandbox", "gc", "--older-than", "-1h")
	if code != exitUsage {
		t.Errorf("gc --older-than -1h: exit %d", code)
	}
}

// The sandbox commands read the repository's [exedev] settings, and refuse
// a broken config file.
func TestSandboxUsesRepoConfig(t *testing.T) {
	srv := sbxEmulator(t)
	sbxNewVM(t, srv, "moat-vm-one", "moat")
	repo := t.TempDir()
	if out, err := exec.Command("git", "init", "-q", repo).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	t.Chdir(repo)
	os.Mkdir(filepath.Join(repo, ".moat"), 0o755)
	toml := "[exedev]\nlobby = \"" + srv.LobbyAddr() + "\"\nidentity_file = \"" + srv.KeyFile() + "\"\nknown_hosts_file = \"" + srv.KnownHostsFile() + "\"\n"
	if err := os.WriteFile(filepath.Join(repo, ".moat", "config.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"MOAT_EXEDEV_LOBBY", "MOAT_EXEDEV_KEY", "MOAT_EXEDEV_KNOWN_HOSTS"} {
		t.Setenv(k, "")
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	// Untrusted, the file's lobby, key and known_hosts are refused.
	_, errOut, code := sbxRun(t, "sandbox", "ls")
	if code != exitUsage || !strings.Contains(errOut, "is not trusted") || !strings.Contains(errOut, "exedev.lobby") || !strings.Contains(errOut, "moat trust") {
		t.Fatalf("ls with an untrusted lobby in config.toml: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := sbxRun(t, "trust"); code != 0 {
		t.Fatalf("moat trust: exit %d\n%s", code, errOut)
	}
	out, _, code := sbxRun(t, "sandbox", "ls")
	if code != 0 || !strings.Contains(out, "moat-vm-one") {
		t.Fatalf("ls with the lobby from config.toml: exit %d\n%s", code, out)
	}

	os.WriteFile(filepath.Join(repo, ".moat", "config.toml"), []byte("sandbox = \n"), 0o644)
	_, errOut, code = sbxRun(t, "sandbox", "ls")
	if code != exitUsage {
		t.Errorf("ls with a broken config: exit %d", code)
	}
	wantIn(t, "stderr", errOut, "config.toml")
}

// Lobby errors reach the user with the fix.
func TestSandboxUnregisteredKey(t *testing.T) {
	sbxEmulator(t, exedevtest.WithUnregisteredKey())
	_, errOut, code := sbxRun(t, "sandbox", "ls")
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	wantIn(t, "stderr", errOut, "Please complete registration", "not registered")
}

func TestSandboxRmCompletion(t *testing.T) {
	srv := sbxEmulator(t)
	sbxNewVM(t, srv, "moat-alpha", "moat")
	sbxNewVM(t, srv, "moat-beta", "moat")
	sbxNewVM(t, srv, "mine-gamma")
	out, errOut, code := sbxRun(t, "__complete", "sandbox", "rm", "moat-beta", "")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !slices.Equal(lines, []string{"moat-alpha", ":4"}) {
		t.Errorf("completions %q (stderr %q); want moat-alpha and NoFileComp", lines, errOut)
	}

	// An unreachable lobby: no completions, no error output.
	srv.Close()
	out, _, code = sbxRun(t, "__complete", "sandbox", "rm", "")
	if code != 0 || strings.TrimSpace(out) != ":4" {
		t.Errorf("completion with the lobby down: exit %d, %q", code, out)
	}
}

func TestHumanAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                 "0s",
		45 * time.Second:             "45s",
		12*time.Minute + time.Second: "12m",
		3*time.Hour + 59*time.Minute: "3h",
		50 * time.Hour:               "2d",
	} {
		if got := humanAge(d); got != want {
			t.Errorf("humanAge(%s) = %q, want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		time.Hour: "1h", 90 * time.Minute: "1h30m", 30 * time.Second: "30s", 2 * time.Minute: "2m", 0: "0s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestSandboxUnknownSubcommand(t *testing.T) {
	_, errOut, code := sbxRun(t, "sandbox", "frob")
	if code != exitUsage {
		t.Errorf("moat sandbox frob: exit %d", code)
	}
	wantIn(t, "stderr", errOut, `unknown command "frob"`, "ls, recover, rm or gc")
	out, _, code := sbxRun(t, "sandbox")
	if code != 0 || !strings.Contains(out, "Available Commands") {
		t.Errorf("moat sandbox: exit %d\n%s", code, out)
	}
}

func TestGCSelect(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	vms := []exedev.VMInfo{
		{Name: "undated"}, // exe.dev did not say
		{Name: "young", CreatedAt: now.Add(-59 * time.Minute)}, // under the threshold
		{Name: "edge", CreatedAt: now.Add(-time.Hour)},         // exactly at it
		{Name: "old", CreatedAt: now.Add(-48 * time.Hour)},
		{Name: "future", CreatedAt: now.Add(time.Hour)}, // a skewed clock
		// It holds an agent's work moat could not bring out.
		{Name: "held", CreatedAt: now.Add(-48 * time.Hour), Tags: []string{exedev.Tag, exedev.KeptTag}},
	}
	old, undated, kept := gcSelect(vms, now, time.Hour)
	var names []string
	for _, vm := range old {
		names = append(names, vm.Name)
	}
	if got := strings.Join(names, " "); got != "edge old" {
		t.Errorf("gc picks %q, want \"edge old\"", got)
	}
	if len(undated) != 1 || undated[0].Name != "undated" || kept != 4 {
		t.Errorf("undated %v, kept %d; want [undated], 4", undated, kept)
	}
	// --older-than 0 still never picks an undated VM.
	if old, _, _ := gcSelect(vms[:1], now, 0); len(old) != 0 {
		t.Errorf("--older-than 0 picked an undated VM: %v", old)
	}
}
