package agenttest

import (
	"context"
	"io"
	"log/slog"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/local"
)

// Sandbox returns a fresh local sandbox (under bubblewrap when it works
// here), closed when the test ends. It skips the test on Windows, where
// local sandboxes do not exist.
func Sandbox(t testing.TB) sandbox.Handle {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("local sandboxes need Unix")
	}
	p := local.New(local.Config{Root: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h, err := p.Create(Context(t), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return h
}

// Context returns a context that ends a minute from now or when the test
// ends.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Exec runs cmd in h and fails the test unless it exits 0.
func Exec(t testing.TB, h sandbox.Handle, cmd string) string {
	t.Helper()
	res, err := h.Exec(Context(t), cmd, sandbox.ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("%s: exit code %d\nstdout: %s\nstderr: %s", cmd, res.ExitCode, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

// Run runs a's invocation for prompt in h the way moat does (stdin, extra
// environment, every stdout line to a fresh parser) and returns the events
// and the result. It fails the test if the invocation cannot be made or
// run.
func Run(t testing.TB, h sandbox.Handle, a agent.Agent, prompt string) ([]agent.Event, sandbox.ExecResult) {
	t.Helper()
	inv, err := a.Invocation(prompt)
	if err != nil {
		t.Fatal(err)
	}
	p := a.NewParser()
	var events []agent.Event
	res, err := h.Exec(Context(t), inv.Cmd, sandbox.ExecOptions{
		Env:    inv.Env,
		Stdin:  strings.NewReader(inv.Stdin),
		OnLine: func(line string) { events = append(events, p.Parse(line)...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return events, res
}

// UnreachableNPM writes, in h's work directory, a wrapper that runs the
// real npm against a registry nobody listens on, and returns its path: an
// agent's Ensure given it as its npm meets an unreachable registry. It
// skips the test when the host has no npm (the local sandbox shares the
// host's tools).
func UnreachableNPM(t testing.TB, h sandbox.Handle) string {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not installed")
	}
	Exec(t, h, `printf '#!/bin/sh\nexec npm --registry http://127.0.0.1:9/ --fetch-retries 0 --fetch-timeout 5000 --cache "$PWD/npm-cache" "$@"\n' > unreachable-npm && chmod +x unreachable-npm`)
	return h.WorkDir() + "/unreachable-npm"
}
