//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/execout"
	"github.com/moatdev/moat/internal/procmark"
	"github.com/moatdev/moat/internal/sshdtest"
	"github.com/moatdev/moat/sandbox"
)

// TestLeftoverSSHHostAfterKill kills moat (SIGKILL) while the agent runs on
// a real SSH host: the sandbox directory keeps the agent's commit and the
// agent's processes keep running there, a daemon that left its group
// included. moat sandbox ls lists the leftover with them, gc keeps it,
// recover brings the commit home (same SHA), rm kills every process that
// carries the sandbox's mark and removes the directory.
func TestLeftoverSSHHostAfterKill(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts processes through /proc")
	}
	srv := sshdtest.Start(t, sshdtest.Options{})
	bin := moatBinary(t)
	repo := scratchRepo(t)
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	known, err := os.ReadFile(srv.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519"), key, 0o600)
	os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), known, 0o600)
	env := append(os.Environ(), "HOME="+home, "SSH_AUTH_SOCK=", "TMPDIR="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir(), "NO_COLOR=1")
	spec := "ssh://" + srv.User + "@" + srv.Addr
	moatCmd := func(args ...string) *exec.Cmd {
		c := exec.Command(bin, args...)
		c.Dir, c.Env = repo, env
		return c
	}

	head := killedRun(t, moatCmd, spec)

	ls, err := moatCmd("sandbox", "ls", "--sandbox", spec).CombinedOutput()
	if err != nil {
		t.Fatalf("moat sandbox ls: %v\n%s", err, ls)
	}
	t.Logf("moat sandbox ls:\n%s", ls)
	// Other tests share the SSH test user: find this run's leftover by
	// its repository.
	lineRe := regexp.MustCompile(`(?m)^(moat-[0-9a-f]{12}) +sshhost +\S+ +(\d+) +1 commit not brought home +\S+ +` + regexp.QuoteMeta(repo) + `$`)
	m := lineRe.FindStringSubmatch(string(ls))
	if m == nil {
		t.Fatalf("moat sandbox ls does not list the leftover with 1 commit not home:\n%s", ls)
	}
	name := m[1]
	procs := procmark.Find(procmark.Env(sandbox.MarkerVar, name))
	if n, _ := strconv.Atoi(m[2]); n < 2 || len(procs) < 2 {
		t.Errorf("ls says %s processes run, /proc has %v; want the agent's sleep and the daemon", m[2], procs)
	}

	gc, err := moatCmd("sandbox", "gc", "--sandbox", spec).CombinedOutput()
	if err != nil || !strings.Contains(string(gc), "kept "+name+": it holds 1 commit not brought home") {
		t.Fatalf("gc did not keep the leftover with unsynced work: %v\n%s", err, gc)
	}
	if _, err := os.Stat(filepath.Join(srv.HomeDir, ".moat", "sandboxes", name)); err != nil {
		t.Fatalf("gc removed the leftover: %v", err)
	}

	rec, err := moatCmd("sandbox", "recover", "--sandbox", spec, name).CombinedOutput()
	if err != nil || !strings.Contains(string(rec), "  "+head+" agent work") {
		t.Fatalf("recover: %v\n%s", err, rec)
	}
	if got := gitIn(t, repo, "branch", "--contains", head, "--format=%(refname:short)"); !strings.HasPrefix(got, "moat/") {
		t.Errorf("the agent's commit %s is on no moat/ branch: %q", head, got)
	}

	rm, err := moatCmd("sandbox", "rm", "--sandbox", spec, name).CombinedOutput()
	if err != nil || !regexp.MustCompile(`removed `+name+` \(sshhost, \d+ process(es)? killed\)`).Match(rm) {
		t.Fatalf("rm: %v\n%s", err, rm)
	}
	if _, err := os.Stat(filepath.Join(srv.HomeDir, ".moat", "sandboxes", name)); !os.IsNotExist(err) {
		t.Errorf("the sandbox directory is still on the host: %v", err)
	}
	if _, err := os.Stat(filepath.Join(srv.HomeDir, ".moat", "sandboxes", "."+name+".json")); !os.IsNotExist(err) {
		t.Errorf("the sandbox's record is still on the host: %v", err)
	}
	if left := procmark.Find(procmark.Env(sandbox.MarkerVar, name)); len(left) > 0 {
		t.Errorf("processes of the sandbox still run after rm: %v", left)
	}
}

// killedRun starts moat run on the sandbox spec with an agent that commits,
// leaves a daemon and sleeps, kills moat with SIGKILL once the commit is
// made, and returns the commit's SHA.
func killedRun(t *testing.T, moatCmd func(args ...string) *exec.Cmd, spec string) string {
	t.Helper()
	run := moatCmd("run", "--sandbox", spec, "--agent", "command", "--agent-cmd",
		`echo x > x.txt && git add x.txt && git commit -qm "agent work" && (setsid sleep 300 >/dev/null 2>&1 &) && echo "head=$(git rev-parse HEAD)" && sleep 300`, "-p", "go")
	out := &execout.Capped{N: 1 << 20}
	run.Stdout, run.Stderr = out, out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	headRe := regexp.MustCompile(`head=([0-9a-f]{40})`)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m := headRe.FindStringSubmatch(out.String()); m != nil {
			run.Process.Kill() // kill -9: no cleanup at all
			run.Wait()
			return m[1]
		}
		if time.Now().After(deadline) {
			run.Process.Kill()
			run.Wait()
			t.Fatalf("the agent never committed:\n%s", out.String())
		}
	}
}

// TestGCAsksBeforeDeletingWork: on a terminal, gc asks before it deletes
// a leftover whose work is not home; "n" keeps it, "y" brings the work
// home (the agent's commit, same SHA, on a branch) and then removes it.
func TestGCAsksBeforeDeletingWork(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("pseudo-terminals")
	}
	bin := moatBinary(t)
	repo := scratchRepo(t)
	tmp := t.TempDir()
	env := append(os.Environ(), "TMPDIR="+tmp, "XDG_CONFIG_HOME="+t.TempDir(), "NO_COLOR=1", "TERM=dumb")
	moatCmd := func(args ...string) *exec.Cmd {
		c := exec.Command(bin, args...)
		c.Dir, c.Env = repo, env
		return c
	}
	head := killedRun(t, moatCmd, "local")
	dirs, _ := filepath.Glob(filepath.Join(tmp, "moat-local-*"))
	if len(dirs) != 1 {
		t.Fatalf("want one leftover local sandbox, have %v", dirs)
	}
	gc := func(answer string) string {
		term := openPTY(t)
		c := moatCmd("sandbox", "gc", "--sandbox", "local")
		c.Stdin, c.Stdout, c.Stderr = term.term, term.term, term.term
		if _, err := term.master.WriteString(answer + "\n"); err != nil {
			t.Fatal(err)
		}
		if err := c.Run(); err != nil {
			t.Errorf("gc answered %q: %v", answer, err)
		}
		return term.output(t)
	}

	out := gc("n")
	if !strings.Contains(out, "holds 1 commit not brought home from "+repo+". Bring it home first? [Y/n]") || !strings.Contains(out, "kept moat-local-") {
		t.Errorf("gc answered n:\n%s", out)
	}
	if _, err := os.Stat(dirs[0]); err != nil {
		t.Fatalf("gc answered n removed the leftover: %v", err)
	}

	out = gc("y")
	if !strings.Contains(out, "  "+head+" agent work") || !strings.Contains(out, "removed moat-local-") {
		t.Errorf("gc answered y:\n%s", out)
	}
	if got := gitIn(t, repo, "branch", "--contains", head, "--format=%(refname:short)"); !strings.HasPrefix(got, "moat/") {
		t.Errorf("the agent's commit %s is on no moat/ branch: %q", head, got)
	}
	if _, err := os.Stat(dirs[0]); !os.IsNotExist(err) {
		t.Errorf("the leftover is still there after its work came home: %v", err)
	}
}

// TestLeftoverStandaloneEmulator: moat dev exedev and a run on it are both
// killed (SIGKILL) while the agent runs: the emulator's VM directory is a
// leftover with the agent's commit, and no process of the VM survives (its
// PID namespace ends with the emulator); recover brings the commit home
// and gc removes the directory.
func TestLeftoverStandaloneEmulator(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts processes through /proc")
	}
	bin := moatBinary(t)
	repo := scratchRepo(t)
	tmp := t.TempDir()
	env := append(os.Environ(), "TMPDIR="+tmp, "HOME="+t.TempDir(), "SSH_AUTH_SOCK=", "XDG_CONFIG_HOME="+t.TempDir(), "NO_COLOR=1")
	dev := exec.Command(bin, "dev", "exedev")
	dev.Env = env
	devOut := &execout.Capped{N: 1 << 16}
	dev.Stdout, dev.Stderr = devOut, devOut
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { dev.Process.Kill(); dev.Wait() }()
	exports := regexp.MustCompile(`export (MOAT_EXEDEV_[A-Z_]+)=(\S+)`)
	for deadline := time.Now().Add(30 * time.Second); len(exports.FindAllString(devOut.String(), -1)) < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("moat dev exedev did not start:\n%s", devOut.String())
		}
	}
	for _, m := range exports.FindAllStringSubmatch(devOut.String(), -1) {
		env = append(env, m[1]+"="+m[2])
	}
	moatCmd := func(args ...string) *exec.Cmd {
		c := exec.Command(bin, args...)
		c.Dir, c.Env = repo, env
		return c
	}
	head := killedRun(t, moatCmd, "exedev")
	dev.Process.Kill()
	dev.Wait()

	// The kernel ends the VM's processes as its PID namespace's init dies:
	// ls may count some for a moment, none after 5s.
	var (
		ls  []byte
		err error
		m   [][]byte
		n   int
	)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ls, err = moatCmd("sandbox", "ls", "--sandbox", "emulator").CombinedOutput()
		m = regexp.MustCompile(`(?m)^(moat-\S+) +emulator +\S+ +(\d+) +1 commit not brought home `).FindSubmatch(ls)
		if err != nil || m == nil {
			t.Fatalf("ls does not list the emulator VM with the commit: %v\n%s", err, ls)
		}
		if n, _ = strconv.Atoi(string(m[2])); n == 0 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("moat sandbox ls:\n%s", ls)
	name := string(m[1])
	if n != 0 {
		t.Errorf("ls counts %d processes of a VM whose emulator was killed 5s ago; want none to survive", n)
	}
	rec, err := moatCmd("sandbox", "recover", name).CombinedOutput()
	if err != nil || !strings.Contains(string(rec), "  "+head+" agent work") {
		t.Fatalf("recover: %v\n%s", err, rec)
	}
	gc, err := moatCmd("sandbox", "gc", "--sandbox", "emulator").CombinedOutput()
	if err != nil || !regexp.MustCompile(`removed `+regexp.QuoteMeta(name)+` \(emulator, age [^,)]+\)`).Match(gc) {
		t.Fatalf("gc: %v\n%s", err, gc)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "exedevtest-*")); len(left) > 0 {
		t.Errorf("the emulator's directory is still there: %v", left)
	}
}
