package moat_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/internal/netfault"
	"github.com/moatdev/moat/internal/procstat"
	"github.com/moatdev/moat/internal/sshdtest"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
	"github.com/moatdev/moat/sandbox/local"
	"github.com/moatdev/moat/sandbox/sshhost"
)

// TestSSHHostConnectionDrops is the fault matrix's dropped-connection cell
// on a real sshd (the rest of the matrix runs on the exe.dev emulator, in
// cmd/moat): sshd's connections are killed while the agent runs. The run
// fails naming the lost connection, the commit the agent made before is
// brought out over a new connection and kept on the run's branch, and the
// sandbox directory is removed from the SSH host.
func TestSSHHostConnectionDrops(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.Options{})
	base := fmt.Sprintf("moat-faults-%d-%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() { os.RemoveAll(filepath.Join(srv.HomeDir, base)) })
	// The network fails, not sshd: the connections go through a proxy
	// the test cuts, so sshd lives on and may leave the agent running.
	proxy := netfault.Start(t, srv.Addr)
	known, err := os.ReadFile(srv.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	_, _, hostKey, _, _, err := ssh.ParseKnownHosts(known)
	if err != nil {
		t.Fatal(err)
	}
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(knownHosts, []byte(knownhosts.Line([]string{knownhosts.Normalize(proxy.Addr())}, hostKey)+"\n"), 0o600)
	p := sshhost.New(sshhost.Config{
		Addr: proxy.Addr(), User: srv.User, IdentityFile: srv.KeyFile, KnownHostsFile: knownHosts,
		WorkDir: "~/" + base,
		SSH:     sshx.Config{SSHConfigFile: "none", AgentSocket: "none", HomeDir: t.TempDir()},
	})
	repo := newRepo(t)
	before := git(t, repo, "rev-parse", "main")
	// The agent outlives its connection unless moat stops it. It writes
	// its PID to a directory the SSH user can write; its process group
	// (the one sshd made, holding the agent and all it started) is read
	// when it says it is ready.
	markers, err := os.MkdirTemp("", "moat-faults-marker-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(markers)
	os.Chmod(markers, 0o1777)
	pidFile := filepath.Join(markers, "agent.pid")
	o := runOpts(target{provider: p}, repo, `echo $$ > `+pidFile+`; echo work > work.txt; commit "agent work"; say "ready"; sleep 60`)
	pgid := 0
	var aliveAtSyncOut []int
	o.OnEvent = func(e moat.Event) {
		switch {
		case e.Kind == moat.EventText && e.Text == "ready":
			pgid = agentGroupID(t, pidFile)
			go proxy.Cut()
		case e.Kind == moat.EventStatus && strings.HasPrefix(e.Text, "syncing the agent's work out"):
			// sshd may leave a command without a terminal running when its
			// connection dies; moat must have stopped it by now.
			aliveAtSyncOut = groupMembers(t, pgid)
		}
	}
	start := time.Now()
	res, err := moat.Run(t.Context(), o)
	t.Logf("run ended after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "connection to the sandbox ended") {
		t.Fatalf("want an error naming the lost connection, got %v", err)
	}
	if errors.Is(err, moat.ErrIdleTimeout) || time.Since(start) > 45*time.Second {
		t.Errorf("the drop was noticed late (%v)", time.Since(start))
	}
	branch := keptPath(res, "branch")
	if branch == "" || git(t, repo, "log", "-1", "--format=%s", branch) != "agent work" {
		t.Errorf("the agent's commit is not kept on a branch: %+v", res.Kept)
	}
	if git(t, repo, "rev-parse", "main") != before {
		t.Error("a failed run moved main")
	}
	entries, _ := os.ReadDir(filepath.Join(srv.HomeDir, base))
	if len(entries) > 0 {
		t.Errorf("sandbox directories left on the SSH host: %v", entries)
	}
	if pgid == 0 {
		t.Fatal("the agent's process group was never found")
	}
	if len(aliveAtSyncOut) > 0 {
		t.Errorf("the agent's processes %v were still running when sync out started", aliveAtSyncOut)
	}
	if left := groupMembers(t, pgid); len(left) > 0 {
		t.Errorf("the agent's processes %v still run after moat returned", left)
	}
}

// agentGroupID returns the process group of the PID in pidFile.
func agentGroupID(t *testing.T, pidFile string) int {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Errorf("the agent's PID file: %v", err)
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	st, err := procstat.Read(pid)
	if err != nil {
		t.Errorf("the agent (PID %q) is not running: %v", data, err)
		return 0
	}
	return st.PGRP
}

// groupMembers lists the live (not zombie) processes of process group
// pgid.
func groupMembers(t *testing.T, pgid int) []int {
	all, err := procstat.All()
	if err != nil {
		t.Error(err) // not Fatal: called from Run's event callback too
		return nil
	}
	var live []int
	for _, p := range all {
		if p.PGRP == pgid && p.Live() {
			live = append(live, p.PID)
		}
	}
	return live
}

// TestKeptSandboxRecovery: when sync out fails for good, the sandbox holds
// the only copy of the work, so Run keeps it, and the steps it prints
// bring everything back (commits, uncommitted and untracked files) when
// followed verbatim.
func TestKeptSandboxRecovery(t *testing.T) {
	srv := exedevtest.NewServer(t, exedevtest.WithDropExec(3, func(s string) bool {
		return strings.Contains(s, "bundle create -q -")
	}))
	repo := newRepo(t)
	o := runOpts(target{provider: exedev.New(srv.Config())}, repo,
		`echo work > work.txt; commit "agent work"; echo draft > draft.txt; echo more >> README.md`)
	res, err := moat.Run(t.Context(), o)
	if err == nil || res == nil || res.Sandbox == nil {
		t.Fatalf("Run = %v; want a failure that keeps the sandbox (result %+v)", err, res)
	}
	h := res.Sandbox
	defer h.Close(t.Context())
	var fix string
	for _, k := range res.Kept {
		if k.What == "sandbox" {
			fix = k.Fix
			if vms := srv.VMs(); len(vms) != 1 || !strings.HasPrefix(k.Path, vms[0]+":") {
				t.Errorf("kept sandbox %q; VMs %v", k.Path, vms)
			}
		}
	}
	if info, err := exedev.New(srv.Config()).List(t.Context()); err != nil || len(info) != 1 || !info[0].HasTag(exedev.KeptTag) {
		t.Errorf("the kept VM is not tagged %s, so moat sandbox gc would delete it: %+v %v", exedev.KeptTag, info, err)
	}
	lines := strings.Split(fix, "\n")
	step := func(n string) string {
		for i, l := range lines {
			if strings.HasPrefix(l, "# "+n+".") && i+1 < len(lines) {
				return lines[i+1]
			}
		}
		t.Fatalf("no step %s in:\n%s", n, fix)
		return ""
	}
	if r, err := h.Exec(t.Context(), step("1"), sandbox.ExecOptions{}); err != nil || r.ExitCode != 0 {
		t.Fatalf("step 1 in the sandbox: %v %+v", err, r)
	}
	if err := h.CopyOut(t.Context(), h.WorkDir()+"/"+moat.KeptWorkBundle, filepath.Join(repo, moat.KeptWorkBundleHost)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", step("2"))
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("step 2 on the host: %v\n%s", err, out)
	}
	recovered := git(t, repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/moat/recovered-*")
	if got := git(t, repo, "log", "--format=%s", "main.."+recovered); got != "moat: work the agent left uncommitted\nagent work" {
		t.Errorf("%s holds %q", recovered, got)
	}
	if got := git(t, repo, "show", recovered+":draft.txt"); got != "draft" {
		t.Errorf("draft.txt on %s: %q", recovered, got)
	}
	if got := git(t, repo, "show", recovered+":README.md"); !strings.HasSuffix(got, "more") {
		t.Errorf("README.md on %s: %q", recovered, got)
	}
}

// TestStillRunningKeepsSandbox: when the sandbox cannot confirm that the
// agent's processes stopped (its Exec error wraps
// sandbox.ErrStillRunning: the network went away for good, say, which
// internal/sshhandle's tests bring about), Run does not read the tree the
// agent may still be writing: no sync out, and the sandbox is kept with
// the work in it. The fault is injected in front of a real local sandbox.
func TestStillRunningKeepsSandbox(t *testing.T) {
	repo := newRepo(t)
	o := runOpts(target{provider: stillRunning{local.New(local.Config{})}}, repo, `echo work > work.txt; commit "agent work"`)
	synced := false
	o.OnEvent = func(e moat.Event) {
		if e.Kind == moat.EventStatus && strings.HasPrefix(e.Text, "syncing the agent's work out") {
			synced = true
		}
	}
	res, err := moat.Run(t.Context(), o)
	if !errors.Is(err, sandbox.ErrStillRunning) {
		t.Fatalf("Run = %v; want an error wrapping sandbox.ErrStillRunning", err)
	}
	if res == nil || res.Sandbox == nil || keptPath(res, "sandbox") == "" {
		t.Fatalf("the sandbox is not kept: %+v", res)
	}
	defer res.Sandbox.Close(t.Context())
	if synced {
		t.Error("sync out started while the agent's processes may still run")
	}
	if r, err := res.Sandbox.Exec(t.Context(), "git log -1 --format=%s", sandbox.ExecOptions{}); err != nil || strings.TrimSpace(r.Stdout) != "agent work" {
		t.Errorf("the kept sandbox does not hold the agent's commit: %q %v", r.Stdout, err)
	}
}

// stillRunning makes sandboxes whose agent command (the fake Claude)
// runs, then reports that its processes may still run.
type stillRunning struct{ sandbox.Provider }

func (p stillRunning) Create(ctx context.Context, opts sandbox.CreateOptions) (sandbox.Handle, error) {
	h, err := p.Provider.Create(ctx, opts)
	if err != nil {
		return nil, err
	}
	return stillRunningHandle{h}, nil
}

type stillRunningHandle struct{ sandbox.Handle }

func (h stillRunningHandle) Exec(ctx context.Context, cmd string, opts sandbox.ExecOptions) (sandbox.ExecResult, error) {
	r, err := h.Handle.Exec(ctx, cmd, opts)
	if err == nil && strings.Contains(cmd, "fakeclaude.sh") && !strings.Contains(cmd, "--version") {
		err = fmt.Errorf("the connection to the sandbox ended: %w: injected", sandbox.ErrStillRunning)
	}
	return r, err
}

// TestSaveKeptWork: for a sandbox that ends with the process, the work
// of a kept sandbox is copied out into a bundle on the host; the sandbox
// is then closed, and the Kept entry's step fetches everything.
func TestSaveKeptWork(t *testing.T) {
	srv := exedevtest.NewServer(t, exedevtest.WithDropExec(3, func(s string) bool {
		return strings.Contains(s, "bundle create -q -")
	}))
	repo := newRepo(t)
	o := runOpts(target{provider: exedev.New(srv.Config())}, repo,
		`echo work > work.txt; commit "agent work"; echo draft > draft.txt`)
	res, err := moat.Run(t.Context(), o)
	if err == nil || res == nil || res.Sandbox == nil {
		t.Fatalf("Run = %v; want a failure that keeps the sandbox (result %+v)", err, res)
	}
	dst := filepath.Join(t.TempDir(), "work.bundle")
	if err := res.SaveKeptWork(t.Context(), dst); err != nil {
		t.Fatal(err)
	}
	if res.Sandbox != nil || len(srv.VMs()) != 0 {
		t.Errorf("the sandbox is still there after SaveKeptWork: %v, VMs %v", res.Sandbox, srv.VMs())
	}
	var fix string
	for _, k := range res.Kept {
		if k.What == "sandbox" {
			t.Errorf("a kept sandbox is still listed: %+v", k)
		}
		if k.What == "bundle" && k.Path == dst {
			fix = k.Fix
		}
	}
	if fix == "" {
		t.Fatalf("no kept bundle %s in %+v", dst, res.Kept)
	}
	first, _, _ := strings.Cut(fix, "\n")
	if out, err := exec.Command("sh", "-c", first).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", first, err, out)
	}
	recovered := git(t, repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/moat/recovered-*")
	if got := git(t, repo, "log", "--format=%s", "main.."+recovered); got != "moat: work the agent left uncommitted\nagent work" {
		t.Errorf("%s holds %q", recovered, got)
	}
	if err := res.SaveKeptWork(t.Context(), dst); err == nil {
		t.Error("a second SaveKeptWork succeeded with no sandbox")
	}
}
