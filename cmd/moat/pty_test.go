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

// hostileAgent prints escape sequences (OSC 52 clipboard write, title
// change, screen clear, cursor home), a carriage return and other control
// bytes on stdout and stderr, and commits with them in its subject and
// author.
const hostileAgent = `cat >/dev/null
printf 'clip \033]52;c;cHduZWQ=\007 title \033]0;pwned\007 clear \033[2J\033[H cr\rover bs\b bel\007 del\177 csi \233\062J rlo \342\200\256evil\n'
printf 'err \033]0;pwned\007 \033[2J\rover\n' >&2
sleep 0.3
date +%s%N > stamp.txt
git add stamp.txt
git -c user.name="$(printf 'Evil\033]0;t\007')" commit -q -m "$(printf 'subject \033]52;c;eA==\007 \033[2J end')"
`

// terminalControl matches what a terminal would act on: C0 controls but
// tab and newline, DEL, C1 controls, what is not UTF-8 (read as U+FFFD)
// and the bidirectional controls.
var terminalControl = regexp.MustCompile("[\x00-\x08\x0b-\x1f\x7f\u0080-\u009f\ufffd\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

// TestTerminalHostileOutput runs the real binary with stdout and stderr
// on colour terminals and an agent printing escape sequences: the only
// control sequences that reach either terminal are moat's own (colour,
// and the spinner's carriage return and erase); the agent's show as
// visible escapes.
func TestTerminalHostileOutput(t *testing.T) {
	bin := moatBinary(t)
	repo := scratchRepo(t)
	os.WriteFile(repo+"/hostile.sh", []byte(hostileAgent), 0o644)
	gitIn(t, repo, "add", "hostile.sh")
	gitIn(t, repo, "commit", "-q", "-m", "the agent")
	cmd := exec.Command(bin, "run", "--repo", repo, "--sandbox", "local", "--agent", "command", "--agent-cmd", "sh hostile.sh", "-p", "go")
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir(), "TERM=xterm-256color", "NO_COLOR=")
	outTTY, errTTY := openPTY(t), openPTY(t)
	cmd.Stdout, cmd.Stderr = outTTY.term, errTTY.term
	runErr := cmd.Run()
	stdout, stderr := outTTY.output(t), errTTY.output(t)
	if runErr != nil {
		t.Fatalf("moat run: %v\nstdout:\n%q\nstderr:\n%q", runErr, stdout, stderr)
	}
	if !colour.MatchString(stdout) || !strings.Contains(stderr, "\r\x1b[K") {
		t.Fatalf("not the terminal output mode (no colour or no spinner):\n%q\n%q", stdout, stderr)
	}
	moats := regexp.MustCompile("\x1b\\[[0-9;]*m|\r\x1b\\[K")
	for name, s := range map[string]string{"stdout": stdout, "stderr": stderr} {
		if m := terminalControl.FindString(moats.ReplaceAllString(s, "")); m != "" {
			t.Errorf("%s: %q (not moat's colour or spinner) reached the terminal:\n%q", name, m, s)
		}
	}
	plainOut, plainErr := colour.ReplaceAllString(stdout, ""), colour.ReplaceAllString(stderr, "")
	for _, want := range []string{
		`| clip ^[]52;c;cHduZWQ=^G title ^[]0;pwned^G clear ^[[2J^[[H cr^Mover bs^H bel^G del^? csi \x9b2J rlo \u202eevil` + "\n",
		" subject ^[]52;c;eA==^G ^[[2J end\n",
	} {
		if !strings.Contains(plainOut, want) {
			t.Errorf("stdout lacks %q:\n%q", want, plainOut)
		}
	}
	if want := "  [agent stderr] err ^[]0;pwned^G ^[[2J^Mover\n"; !strings.Contains(plainErr, want) {
		t.Errorf("stderr lacks %q:\n%q", want, plainErr)
	}
}

// TestTerminalFailedRun: on a terminal, a run whose agent fails marks no
// step it did not fail with ✗ (closing the sandbox went well), and its
// summary starts with what failed.
func TestTerminalFailedRun(t *testing.T) {
	bin := moatBinary(t)
	repo := scratchRepo(t)
	cmd := exec.Command(bin, "run", "--repo", repo, "--sandbox", "local", "--max-iterations", "1",
		"--agent", "command", "--agent-cmd", "sleep 0.3; exit 3", "-p", "go")
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir(), "TERM=xterm-256color", "NO_COLOR=1")
	outTTY, errTTY := openPTY(t), openPTY(t)
	cmd.Stdout, cmd.Stderr = outTTY.term, errTTY.term
	runErr := cmd.Run()
	stdout, stderr := outTTY.output(t), errTTY.output(t)
	if runErr == nil {
		t.Fatalf("moat run succeeded with a failing agent:\n%q\n%q", stdout, stderr)
	}
	if !strings.Contains(stderr, "\r\x1b[K") {
		t.Fatalf("not the terminal output mode (no spinner):\n%q", stderr)
	}
	if strings.Contains(stderr, "✗ closing the sandbox") || !strings.Contains(stderr, "✓ closing the sandbox") {
		t.Errorf("closing the sandbox went well, yet it is not marked ✓ alone:\n%q", stderr)
	}
	if !regexp.MustCompile(`── summary \([^)]*\) ──\r?\nfailed: agent failed: command exited with code 3 and printed nothing\r?\n`).MatchString(stdout) {
		t.Errorf("the summary does not start with what failed:\n%q", stdout)
	}
	if strings.HasSuffix(strings.TrimSpace(stderr), ":") {
		t.Errorf("the error ends in a colon:\n%q", stderr)
	}
}
