package moat_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/internal/sshdtest"
	"github.com/moatdev/moat/internal/sshx"
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
	p := sshhost.New(sshhost.Config{
		Addr: srv.Addr, User: srv.User, IdentityFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile,
		WorkDir: "~/" + base,
		SSH:     sshx.Config{SSHConfigFile: "none", AgentSocket: "none", HomeDir: t.TempDir()},
	})
	repo := newRepo(t)
	before := git(t, repo, "rev-parse", "main")
	// The agent outlives its connection unless moat stops it: it would
	// touch the marker (in a directory the SSH user can write) 2s later.
	markers, err := os.MkdirTemp("", "moat-faults-marker-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(markers)
	os.Chmod(markers, 0o1777)
	marker := filepath.Join(markers, "agent-still-ran")
	o := runOpts(target{provider: p}, repo, `echo work > work.txt; commit "agent work"; say "ready"; sleep 2; touch `+marker+`; sleep 60`)
	o.OnEvent = func(e moat.Event) {
		if e.Kind == moat.EventText && e.Text == "ready" {
			go func() {
				if err := srv.KillConnections(); err != nil {
					t.Errorf("killing sshd's connections: %v", err)
				}
			}()
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
	time.Sleep(3 * time.Second)
	if _, err := os.Stat(marker); err == nil {
		t.Error("the agent kept running after its connection dropped")
	}
}
