package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
)

// TestDevExedev runs `moat dev exedev`, points the exe.dev provider at it
// with the environment it prints, runs a command in a VM, then stops the
// emulator as Ctrl-C would and checks the VM's files are gone.
func TestDevExedev(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	cmd := newRootCmd()
	cmd.SetArgs([]string{"dev", "exedev"})
	cmd.SetOut(pw)
	cmd.SetErr(io.Discard)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()

	env := map[string]string{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() && len(env) < 3 {
		if k, v, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export "), "="); ok && strings.HasPrefix(k, "MOAT_EXEDEV_") {
			env[k] = v
		}
	}
	go io.Copy(io.Discard, pr)
	if len(env) != 3 {
		t.Fatalf("moat dev exedev printed %v, want MOAT_EXEDEV_LOBBY, _KEY and _KNOWN_HOSTS", env)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg := exedev.ConfigFromEnv()
	cfg.SSH.HomeDir = t.TempDir() // not the user's ~/.ssh
	cfg.SSH.SSHConfigFile = "none"
	h, err := exedev.New(cfg).Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatalf("Create against the printed environment: %v", err)
	}
	r, err := h.Exec(t.Context(), "echo hello from $(hostname)", sandbox.ExecOptions{})
	if err != nil || !strings.HasPrefix(r.Stdout, "hello from ") {
		t.Fatalf("exec: %v %+v", err, r)
	}
	keyDir := strings.TrimSuffix(env["MOAT_EXEDEV_KEY"], "/keys/id_ed25519")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("moat dev exedev exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("moat dev exedev did not stop within 30s of Ctrl-C")
	}
	if _, err := os.Stat(keyDir); !os.IsNotExist(err) {
		t.Errorf("the emulator's directory %s is still there after it stopped (%v)", keyDir, err)
	}
	h.Close(context.Background()) // the lobby is gone; Close must still return
}
