//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pty is one pseudo-terminal: the test reads what moat writes to term.
type pty struct {
	master, term *os.File
	done         chan []byte
}

// openPTY opens a pseudo-terminal with output processing off (so "\n"
// arrives as written) and starts reading it.
func openPTY(t *testing.T) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tio, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Oflag &^= unix.OPOST
	if err := unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80}); err != nil {
		t.Fatal(err)
	}
	p := &pty{master: m, term: s, done: make(chan []byte, 1)}
	go func() {
		// Read until every copy of the terminal side is closed (EIO).
		var b bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				p.done <- b.Bytes()
				return
			}
		}
	}()
	return p
}

// output closes the test's copy of the terminal side and returns all that
// was written to it.
func (p *pty) output(t *testing.T) string {
	t.Helper()
	p.term.Close()
	select {
	case b := <-p.done:
		return string(b)
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal was still held open 10s after moat exited")
		return ""
	}
}

// colour matches an SGR escape (colour, dim, bold).
var colour = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestTerminalOutput runs the real binary on real pseudo-terminals: the
// spinner goes to a terminal stderr only, colour only where both are
// colour terminals, and neither when stdout carries data (--json), is a
// pipe, or the terminal is dumb.
func TestTerminalOutput(t *testing.T) {
	bin := moatBinary(t)
	// The agent talks, then works long enough for the spinner to turn.
	agentCmd := `echo "agent says hi"; sleep 0.6; echo x > x.txt && git add x.txt && git commit -qm "agent work"`
	for _, tc := range []struct {
		name      string
		args      []string
		env       []string
		stdoutTTY bool
		// what stderr (a terminal in every case) must show
		spinner, colour bool
	}{
		{name: "both terminals", stdoutTTY: true, env: []string{"TERM=xterm-256color"}, spinner: true, colour: true},
		{name: "NO_COLOR", stdoutTTY: true, env: []string{"TERM=xterm-256color", "NO_COLOR=1"}, spinner: true},
		{name: "dumb terminal", stdoutTTY: true, env: []string{"TERM=dumb"}},
		{name: "stdout a pipe", env: []string{"TERM=xterm-256color"}},
		{name: "json", stdoutTTY: true, args: []string{"--json"}, env: []string{"TERM=xterm-256color"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo := scratchRepo(t)
			cmd := exec.Command(bin, append([]string{"run", "--repo", repo, "--sandbox", "local", "--agent", "command",
				"--agent-cmd", agentCmd, "-p", "go"}, tc.args...)...)
			cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
			cmd.Env = append(cmd.Env, tc.env...)
			errTTY := openPTY(t)
			cmd.Stderr = errTTY.term
			var outTTY *pty
			var outPipe bytes.Buffer
			if tc.stdoutTTY {
				outTTY = openPTY(t)
				cmd.Stdout = outTTY.term
			} else {
				cmd.Stdout = &outPipe
			}
			runErr := cmd.Run()
			stderr := errTTY.output(t)
			stdout := outPipe.String()
			if outTTY != nil {
				stdout = outTTY.output(t)
			}
			if runErr != nil {
				t.Fatalf("moat run: %v\nstdout:\n%q\nstderr:\n%q", runErr, stdout, stderr)
			}
			if got := gitIn(t, repo, "log", "-1", "--format=%s", "main"); got != "agent work" {
				t.Errorf("main is at %q, want the agent's commit", got)
			}

			// stdout: the agent's words and the summary, or JSON; coloured
			// when it is a colour terminal itself, and never anything else
			// a terminal would act on (the spinner's \r and erase).
			if got := colour.MatchString(stdout); got != tc.colour {
				t.Errorf("colour on stdout = %v, want %v; stdout:\n%q", got, tc.colour, stdout)
			}
			if plain := colour.ReplaceAllString(stdout, ""); strings.ContainsAny(plain, "\x1b\r") {
				t.Errorf("stdout carries terminal control bytes: %q", stdout)
			}
			if len(tc.args) > 0 {
				for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
					var v map[string]any
					if err := json.Unmarshal([]byte(line), &v); err != nil {
						t.Errorf("--json stdout line is not JSON (%v): %q", err, line)
					}
				}
			} else if !strings.Contains(stdout, "agent says hi") {
				t.Errorf("stdout lacks the agent's text: %q", stdout)
			}

			// stderr: the spinner and colour only where the case allows.
			drew := strings.Contains(stderr, "\r\x1b[K") && strings.ContainsAny(stderr, strings.Join(spinnerFrames, ""))
			if drew != tc.spinner {
				t.Errorf("spinner drawn = %v, want %v; stderr:\n%q", drew, tc.spinner, stderr)
			}
			if got := colour.MatchString(stderr); got != tc.colour {
				t.Errorf("colour on stderr = %v, want %v; stderr:\n%q", got, tc.colour, stderr)
			}
			if !tc.spinner && !tc.colour && strings.Contains(stderr, "\x1b") {
				t.Errorf("stderr carries escapes though it should be plain: %q", stderr)
			}
		})
	}
}
