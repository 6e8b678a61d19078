//go:build linux

package sshhandle_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/moatdev/moat/internal/netfault"
	"github.com/moatdev/moat/internal/procstat"
	"github.com/moatdev/moat/internal/sshdtest"
	"github.com/moatdev/moat/internal/sshhandle"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
)

// TestExecAfterLostConnection: when the connection dies under a command
// that sshd leaves running, Exec returns only once the command's
// processes are gone, the network having come back within the window;
// when it stays down, Exec says the processes may still run
// (sandbox.ErrStillRunning) rather than let the caller read a sandbox
// that may still change.
func TestExecAfterLostConnection(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.Options{})
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
	client, err := sshx.New(sshx.Config{
		Host: proxy.Addr(), User: srv.User, IdentityFile: srv.KeyFile, KnownHostsFile: knownHosts,
		SSHConfigFile: "none", AgentSocket: "none", HomeDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	work, err := sshhandle.MakeDir(t.Context(), client, "loss-test-"+strconv.Itoa(os.Getpid()), true)
	if err != nil {
		t.Fatal(err)
	}
	defer sshhandle.RemoveDir(context.Background(), client, work)
	h := sshhandle.New(client, work, nil, nil)
	defer h.Close(context.Background())
	// The SSH user writes the command's PID where the test reads it.
	markers, err := os.MkdirTemp("", "moat-loss-marker-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(markers)
	os.Chmod(markers, 0o1777)

	// run starts a command that reports its process group, cuts the
	// network once it is running, and returns Exec's error and the group.
	run := func(t *testing.T, name string, outage func()) (error, int) {
		pidFile := filepath.Join(markers, name)
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := h.Exec(t.Context(), "echo $$ > "+pidFile+"; sh -c 'sleep 60' & echo ready; wait", sandbox.ExecOptions{
				OnLine: func(l string) {
					if l == "ready" {
						close(ready)
					}
				},
			})
			done <- err
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("the command ended early: %v", err)
		}
		data, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		if pid <= 1 {
			t.Fatalf("no PID in %s: %q", pidFile, data)
		}
		outage()
		select {
		case err := <-done:
			return err, pid
		case <-time.After(time.Minute):
			t.Fatal("Exec did not return within a minute of the outage")
		}
		return nil, 0
	}

	t.Run("NetworkBack", func(t *testing.T) {
		err, pgid := run(t, "back", func() {
			proxy.Down()
			time.AfterFunc(time.Second, proxy.Up)
		})
		if err == nil || errors.Is(err, sandbox.ErrStillRunning) {
			t.Fatalf("Exec = %v; want the lost connection, with the processes stopped", err)
		}
		if live := liveInGroup(t, pgid); len(live) > 0 {
			t.Errorf("the command's processes %v still run when Exec returned: %v", live, err)
		}
	})
	t.Run("NetworkGone", func(t *testing.T) {
		sshhandle.SetLossWindow(t, time.Second)
		err, pgid := run(t, "gone", proxy.Down)
		defer proxy.Up()
		if !errors.Is(err, sandbox.ErrStillRunning) {
			t.Fatalf("Exec = %v; want an error wrapping sandbox.ErrStillRunning", err)
		}
		t.Logf("Exec: %v", err)
		if live := liveInGroup(t, pgid); len(live) == 0 {
			t.Error("the processes are gone: the test did not test the lost case")
		}
		proxy.Up()
		if err := h.KillAll(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// liveInGroup lists the processes of group pgid that are not zombies.
func liveInGroup(t *testing.T, pgid int) []int {
	all, err := procstat.All()
	if err != nil {
		t.Fatal(err)
	}
	var live []int
	for _, p := range all {
		if p.PGRP == pgid && p.Live() {
			live = append(live, p.PID)
		}
	}
	return live
}
