//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/execout"
	"github.com/moatdev/moat/internal/testenv"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
)

// The fault matrix: the real moat binary runs against the exe.dev emulator
// while one thing goes wrong. For every cell it asserts what RELIABILITY.md
// promises: no VM is left on the emulator, the agent's commit is on the
// user's branch or kept (on a moat/ branch) with the command to finish
// printed, the error the user reads names the cause, and moat exits with
// the documented code.

// moatBinary builds cmd/moat into the test's temporary directory (the
// build cache makes a second build a link).
func moatBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "moat")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// faultCell is one row of the matrix.
type faultCell struct {
	name  string
	emu   []exedevtest.Option
	setup func(t *testing.T, repo string, srv *exedevtest.Server)
	// agent is the --agent-cmd; it runs in the repository in the VM.
	agent string
	args  []string
	// during runs while moat runs, once the agent has touched ../ready
	// (the VM's home).
	during func(t *testing.T, cmd *exec.Cmd, repo string, srv *exedevtest.Server)

	wantExit int
	wantErr  string // regexp the output must match: the cause, in words
	// landed: the agent's commit is on main; kept: it is on a kept moat/
	// branch and the output says how to merge it; neither: no work.
	wantNot      string // regexp the output must not match
	landed, kept bool
	keepVMs      []string // VMs that existed before and must still exist
	// keptVM: the run's VM holds the only copy of the work, so it must be
	// kept (and nothing else), with how to fetch the work and remove it.
	keptVM bool
}

const agentCommit = `echo work > work.txt && git add work.txt && git commit -qm "agent work"`

func TestFaultMatrix(t *testing.T) {
	testenv.RequireBinary(t, "git", "git")
	bin := moatBinary(t)
	cells := []faultCell{
		{
			name: "quota refuses new",
			emu:  []exedevtest.Option{exedevtest.WithQuota(1)},
			setup: func(t *testing.T, repo string, srv *exedevtest.Server) {
				if out, err := lobbyCommand(srv, "new --json --no-email --name=other-vm"); err != nil {
					t.Fatalf("making the VM that fills the quota: %v\n%s", err, out)
				}
			},
			agent:    agentCommit,
			wantExit: exitFailure,
			wantErr:  `maximum number of VMs`,
			keepVMs:  []string{"other-vm"},
		},
		{
			name:     "VM never ready",
			emu:      []exedevtest.Option{exedevtest.WithReadyDelay(time.Hour)},
			setup:    writeConfig("[exedev]\nready_timeout = \"2s\"\n"),
			agent:    agentCommit,
			wantExit: exitFailure,
			wantErr:  `not ready after 2s`,
		},
		{
			name: "connection drops during sync in",
			emu: []exedevtest.Option{exedevtest.WithDropExec(1, func(s string) bool {
				return strings.Contains(s, "tar -xf - -C .git/objects/pack")
			})},
			agent:    agentCommit,
			wantExit: exitOK,
			wantErr:  `syncing the repository in failed .*; trying again`,
			landed:   true,
		},
		{
			// The last step of sync in ran, but its answer was lost: the
			// retry finds the repository complete instead of refusing it.
			name: "sync in's last answer lost",
			emu: []exedevtest.Option{exedevtest.WithLoseExitStatus(1, func(s string) bool {
				return strings.Contains(s, "rm -f .git/moat-sync-in-partial")
			})},
			agent:    agentCommit,
			wantExit: exitOK,
			wantErr:  `syncing the repository in failed .*; trying again`,
			landed:   true,
		},
		{
			// Sync out ran in the sandbox but its answer was lost: nothing
			// changed on the host, so it is simply run again.
			name: "sync out's answer lost",
			emu: []exedevtest.Option{exedevtest.WithLoseExitStatus(1, func(s string) bool {
				return strings.Contains(s, "bundle create -q -")
			})},
			agent:    agentCommit,
			wantExit: exitOK,
			wantErr:  `1 commit`,
			landed:   true,
		},
		{
			name:  "connection drops during the agent",
			agent: agentCommit + ` && touch ../ready && sleep 60`,
			during: func(t *testing.T, cmd *exec.Cmd, repo string, srv *exedevtest.Server) {
				for _, vm := range srv.VMs() {
					srv.DropConnections(vm)
				}
			},
			wantExit: exitFailure,
			wantErr:  `connection to the sandbox ended`,
			kept:     true,
		},
		{
			name: "connection drops during sync out",
			emu: []exedevtest.Option{exedevtest.WithDropExec(1, func(s string) bool {
				return strings.Contains(s, "bundle create -q -")
			})},
			agent:    agentCommit,
			wantExit: exitOK,
			wantErr:  `syncing the agent's work out failed .*; trying again`,
			landed:   true,
		},
		{
			// A man in the middle (or a rotated key) between the agent and
			// sync out: moat refuses to talk to it, and keeps the VM, which
			// holds the only copy of the commit.
			name:  "VM host key changes mid-run",
			agent: agentCommit + ` && touch ../ready && sleep 60`,
			during: func(t *testing.T, cmd *exec.Cmd, repo string, srv *exedevtest.Server) {
				if _, err := srv.ChangeHostKey(); err != nil {
					t.Fatal(err)
				}
				for _, vm := range srv.VMs() {
					srv.DropConnections(vm)
				}
			},
			wantExit: exitFailure,
			wantErr:  `(?s)kept sandbox.*git bundle create.*host key rejected.*refusing to connect`,
			keptVM:   true,
		},
		{
			name:     "agent crashes",
			agent:    agentCommit + ` && echo "segfault in the agent" >&2 && kill -SEGV $$`,
			wantExit: exitFailure,
			wantErr:  `exited with code 139(.|\n)*segfault in the agent`,
			kept:     true,
		},
		{
			name:     "idle timeout",
			agent:    agentCommit + ` && sleep 60`,
			args:     []string{"--idle-timeout", "5s"}, // room for the commit on a slow machine
			wantExit: exitFailure,
			wantErr:  `printed nothing for 5s`,
			kept:     true,
		},
		{
			name: "branch moved and the merge conflicts",
			// The agent ends only once the user's commit is in (../go), so
			// the merge always meets it, however slow the machine.
			agent: `echo agent > greeter.sh && git commit -qam "agent work" && touch ../ready && i=0 && while [ ! -e ../go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done`,
			during: func(t *testing.T, cmd *exec.Cmd, repo string, srv *exedevtest.Server) {
				os.WriteFile(filepath.Join(repo, "greeter.sh"), []byte("user\n"), 0o755)
				gitIn(t, repo, "commit", "-qam", "user work")
				for _, vm := range srv.VMs() {
					if home, ok := srv.VMHome(vm); ok {
						os.WriteFile(filepath.Join(home, "go"), nil, 0o644)
					}
				}
			},
			wantExit: exitFailure,
			wantErr:  `conflict(.|\n)*greeter\.sh`,
			kept:     true,
		},
		{
			// What the agent left uncommitted comes home as a commit.
			name:     "uncommitted work",
			agent:    agentCommit + ` && echo more >> greeter.sh`,
			wantExit: exitOK,
			wantErr:  `2 commit`,
			landed:   true,
		},
		{
			name:  "SIGINT during the agent",
			agent: agentCommit + ` && touch ../ready && sleep 60`,
			during: func(t *testing.T, cmd *exec.Cmd, repo string, srv *exedevtest.Server) {
				cmd.Process.Signal(syscall.SIGINT)
			},
			wantExit: exitInterrupted,
			wantErr:  `interrupted`,
			kept:     true,
		},
		{
			name:  "SIGTERM during the agent",
			agent: agentCommit + ` && touch ../ready && sleep 60`,
			during: func(t *testing.T, cmd *exec.Cmd, repo string, srv *exedevtest.Server) {
				cmd.Process.Signal(syscall.SIGTERM)
			},
			wantExit: exitInterrupted,
			wantErr:  `interrupted`,
			kept:     true,
		},
	}
	for _, c := range cells {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runFaultCell(t, bin, c)
		})
	}
}

// blockPath puts a file where moat wants the directory rel.
func blockPath(rel string) func(t *testing.T, repo string, srv *exedevtest.Server) {
	return func(t *testing.T, repo string, srv *exedevtest.Server) {
		p := filepath.Join(repo, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("in the way\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func writeConfig(toml string) func(t *testing.T, repo string, srv *exedevtest.Server) {
	return func(t *testing.T, repo string, srv *exedevtest.Server) {
		os.MkdirAll(filepath.Join(repo, ".moat"), 0o755)
		if err := os.WriteFile(filepath.Join(repo, ".moat", "config.toml"), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runFaultCell(t *testing.T, bin string, c faultCell) {
	srv := exedevtest.NewServer(t, c.emu...)
	repo := scratchRepo(t)
	if c.setup != nil {
		c.setup(t, repo, srv)
	}
	before := gitIn(t, repo, "rev-parse", "main")
	home := t.TempDir()
	args := append([]string{"run", "--sandbox", "exedev", "--agent", "command", "--agent-cmd", c.agent, "-p", "work"}, c.args...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "HOME="+home, "SSH_AUTH_SOCK=", "NO_COLOR=1",
		"MOAT_EXEDEV_LOBBY="+srv.LobbyAddr(), "MOAT_EXEDEV_KEY="+srv.KeyFile(), "MOAT_EXEDEV_KNOWN_HOSTS="+srv.KnownHostsFile())
	out := &execout.Capped{N: 1 << 20}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	if c.during != nil {
		waitForVMFile(t, srv, "ready", done, out)
		c.during(t, cmd, repo, srv)
	}
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("moat did not finish within 90s:\n%s", out.String())
	}
	text := out.String()
	t.Logf("moat said:\n%s", text)

	if code := cmd.ProcessState.ExitCode(); code != c.wantExit {
		t.Errorf("exit code %d, want %d", code, c.wantExit)
	}
	if !regexp.MustCompile(c.wantErr).MatchString(text) {
		t.Errorf("the output does not name the cause (want /%s/)", c.wantErr)
	}
	if c.wantNot != "" && regexp.MustCompile(c.wantNot).MatchString(text) {
		t.Errorf("the output matches /%s/", c.wantNot)
	}
	switch vms := srv.VMs(); {
	case c.keptVM:
		if len(vms) != 1 || !strings.Contains(text, "moat sandbox rm "+vms[0]) {
			t.Errorf("VMs on the emulator after the run: %v, want the run's VM, kept, with how to remove it", vms)
		}
	case !equalSets(vms, c.keepVMs):
		t.Errorf("VMs on the emulator after the run: %v, want %v", vms, c.keepVMs)
	}
	kept := gitIn(t, repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/moat/")
	landed := gitIn(t, repo, "log", "--format=%s", before+"..main")
	switch {
	case c.landed:
		if n := strings.Count(landed, "agent work"); n != 1 {
			t.Errorf("the agent's commit is on main %d times, want once (new on main: %q)", n, landed)
		}
	case c.kept:
		if kept == "" || gitIn(t, repo, "log", "-1", "--format=%s", kept) != "agent work" {
			t.Errorf("the agent's commit is not kept on a moat/ branch (branches: %q)", kept)
		} else if !regexp.MustCompile(`git merge (--no-edit )?` + regexp.QuoteMeta(kept)).MatchString(text) {
			t.Errorf("the output does not print how to merge the kept branch %s", kept)
		}
		if strings.Contains(landed, "agent work") {
			t.Errorf("a failed run merged into main: %q", landed)
		}
	default:
		if kept != "" || landed != "" {
			t.Errorf("a run that did no work left branches %q / commits %q", kept, landed)
		}
	}
	// Worktrees are gone unless kept, and kept ones are named.
	if wts := gitIn(t, repo, "worktree", "list", "--porcelain"); strings.Count(wts, "worktree ") > 1 && !strings.Contains(text, "kept worktree") {
		t.Errorf("worktrees left without a word:\n%s", wts)
	}
}

// waitForVMFile waits until some VM on srv has rel (relative to its home),
// or fails the test when moat ends first or 30s pass.
func waitForVMFile(t *testing.T, srv *exedevtest.Server, rel string, done <-chan struct{}, out *execout.Capped) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, name := range srv.VMs() {
			if home, ok := srv.VMHome(name); ok {
				if _, err := os.Stat(filepath.Join(home, rel)); err == nil {
					return
				}
			}
		}
		select {
		case <-done:
			t.Fatalf("moat ended before the agent was ready:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("no VM has %s after 30s:\n%s", rel, out.String())
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, s := range a {
		m[s] = true
	}
	for _, s := range b {
		if !m[s] {
			return false
		}
	}
	return true
}
