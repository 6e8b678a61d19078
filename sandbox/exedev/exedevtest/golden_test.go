package exedevtest

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenCase is a sequence of lobby commands whose outputs are pinned in
// testdata/golden/<name>.txt.
type goldenCase struct {
	name string
	opts []Option
	user string   // lobby SSH username; "" means "moat"
	cmds []string // command lines sent to the lobby, in order
}

var goldenCases = []goldenCase{
	{name: "invalid_name", cmds: []string{
		"new --name=ThisIsNotAValidBoxName!",
		"new --json --name=abcd",
		"new --name=test-123",
		"new --name=a--b-c",
		"new --name=trailing-",
		"new --name=" + strings.Repeat("a", 64),
	}},
	{name: "name_taken", opts: []Option{WithTakenNames("taken-name")}, cmds: []string{
		"new --name=taken-name",
		"new --json --name taken-name",
		"new --name=sandbox",
		"new --name=docker --json",
	}},
	{name: "name_is_ssh_user", user: "some-user", cmds: []string{"new --name=some-user"}},
	{name: "quota", opts: []Option{WithQuota(1)}, cmds: []string{
		"new --name=first-vm --json",
		"new --name=second-vm",
		"new --json",
		"cp first-vm --json",
	}},
	{name: "unknown_command", cmds: []string{
		"frobnicate now please",
		"frobnicate --json",
		"billing",
	}},
	{name: "unknown_flag", cmds: []string{
		"ls --foo",
		"ls -foo=1",
		"ls --json --foo",
		"new --name x --bogus",
	}},
	{name: "positional_to_no_arg_command", cmds: []string{
		"whoami extra",
		"new myname",
		"new ; ls",
		"whoami --json extra",
	}},
	{name: "disk_ceiling", cmds: []string{
		"new --name=disk-test --disk=50GB",
		"new --name=disk-test --disk=26",
		"new --name=disk-test --json --disk 100G",
		"new --name=disk-test --disk=xyz",
		"new --name=disk-test --memory=lots",
	}},
	{name: "disk_ceiling_11", opts: []Option{WithDiskCeiling(11)}, cmds: []string{
		"new --name=BOX_NAME --disk=20GB",
		"new --name=disk-test --disk=20GB",
	}},
	{name: "new_json", cmds: []string{
		"new --json --no-email --name=json-test --tag=moat --tag=b,a",
		"new -json -no-email --name=json-plain",
		"new --json",
	}},
	{name: "new_text", opts: []Option{WithMissingImages("ghcr.io/nobody/nonexistent-image-abc123:latest")}, cmds: []string{
		"new --name=text-test",
		"new --name=image-test --image=ghcr.io/nobody/nonexistent-image-abc123:latest",
		"new --name=env-test --env INVALID_VAR",
		"new --name=tag-test --tag=Bad",
	}},
	{name: "ls", cmds: []string{
		"ls --json",
		"ls",
		"new --name=listed-vm --tag=zeta,alpha --json",
		"ls --json",
		"ls",
		"ls --json listed-*",
		"ls --json nomatch",
	}},
	{name: "rm", cmds: []string{
		"new --name=rm-text --json",
		"new --name=rm-json-a --json",
		"new --name=rm-json-b --json",
		"rm rm-text",
		"rm --json rm-json-a",
		"rm rm-json-b missing-vm --json",
		"rm missing-vm",
		"rm --json missing-vm",
		"rm",
		"ls --json",
	}},
	{name: "old_json", opts: []Option{WithOldJSON()}, cmds: []string{
		"new --name=old-shape --json",
		"rm --json old-shape",
	}},
	{name: "legacy_routing", opts: []Option{WithLegacyRouting()}, cmds: []string{
		"new --name=legacy-vm --json",
		"ls --json",
	}},
	{name: "whoami", cmds: []string{"whoami --json", "whoami"}},
	{name: "help", cmds: []string{"help", "help new", "new --help", "rm -h", "help rm --json", "help bogus"}},
	{name: "registration", opts: []Option{WithUnregisteredKey()}, cmds: []string{"ls --json", "whoami", "new --name=some-vm"}},
	{name: "errors_on_stderr", opts: []Option{WithErrorsOnStderr()}, cmds: []string{
		"new --name=Bad!",
		"new --json --name=Bad!",
		"whoami --json",
	}},
	{name: "lexer", cmds: []string{
		`new --name 'quoted name'`,
		`new --name "dq\"name"`,
		`ls "unclosed`,
		`tag --json -d missing-vm 'a b'`,
		`new --name=lexer-vm --json -- extra`,
	}},
	{name: "tag_cp", cmds: []string{
		"new --name=tag-src --tag=one --json",
		"tag tag-src two three",
		"tag -d tag-src one --json",
		"cp tag-src tag-copy --json",
		"cp tag-src tag-nocopy --copy-tags=false --json",
		"cp no-such-src --json",
		"restart tag-copy",
		"restart --json missing-vm",
		"ls --json tag-*",
	}},
}

func TestGolden(t *testing.T) {
	for _, gc := range goldenCases {
		t.Run(gc.name, func(t *testing.T) {
			opts := append([]Option{WithoutSandbox()}, gc.opts...)
			s := NewServer(t, opts...)
			user := gc.user
			if user == "" {
				user = "moat"
			}
			lobby := mustDial(t, s, s.LobbyAddr(), user)
			var b strings.Builder
			named := map[string]bool{}
			for _, cmd := range gc.cmds {
				for _, w := range regexp.MustCompile(`[a-z][a-z0-9-]+`).FindAllString(cmd, -1) {
					named[w] = true
				}
				r := lobbyRun(t, lobby, cmd)
				fmt.Fprintf(&b, "$ %s\n%s%sexit: %d\n\n", cmd,
					section("stdout", normalize(s, r.stdout, named)), section("stderr", normalize(s, r.stderr, named)), r.code)
				checkExecOutput(t, cmd, r, gc.name == "registration")
			}
			compareGolden(t, gc.name, b.String())
		})
	}
}

// section renders one output stream exactly: as "| " lines when it is
// plain text ending in a newline, else as a Go-quoted string.
func section(label, out string) string {
	if out == "" {
		return label + ": (empty)\n"
	}
	if strings.HasSuffix(out, "\n") && !strings.ContainsAny(out, "\r\x1b\t") && utf8.ValidString(out) {
		var b strings.Builder
		b.WriteString(label + ":\n")
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if line == "" {
				b.WriteString("|\n")
			} else {
				b.WriteString("| " + line + "\n")
			}
		}
		return b.String()
	}
	return label + ": " + strconv.Quote(out) + "\n"
}

// checkExecOutput checks the exec-mode rules that hold for every command:
// exit status 0 or 1, no ANSI escapes, no \r (except the registration
// line).
func checkExecOutput(t *testing.T, cmd string, r result, registration bool) {
	t.Helper()
	if r.code != 0 && r.code != 1 {
		t.Errorf("%q: exit status %d, want 0 or 1", cmd, r.code)
	}
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, "\x1b") {
			t.Errorf("%q: ANSI escape in output %q", cmd, out)
		}
		if strings.Contains(out, "\r") && !registration {
			t.Errorf("%q: \\r in output %q", cmd, out)
		}
	}
}

var (
	rePort      = regexp.MustCompile(`("ssh_port":|-p |127\.0\.0\.1:)\d+`)
	reCreated   = regexp.MustCompile(`("created_at":")[^"]+"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	reReady     = regexp.MustCompile(`Ready in [0-9.]+s`)
	reRandomVM  = regexp.MustCompile(`\b[a-z]+-[a-z]+\b`)
	reEd25519   = regexp.MustCompile(`ssh-ed25519 [A-Za-z0-9+/=]+`)
	reSHA256    = regexp.MustCompile(`SHA256:[A-Za-z0-9+/]+`)
	reTraceID   = regexp.MustCompile(`trace ID: \S+`)
	randomWords = func() map[string]bool {
		m := map[string]bool{}
		for _, w := range nameWords1 {
			m[w] = true
		}
		return m
	}()
)

// normalize replaces values that change from run to run with placeholders.
func normalize(s *Server, out string, named map[string]bool) string {
	out = reCreated.ReplaceAllStringFunc(out, func(m string) string {
		if strings.HasPrefix(m, `"created_at"`) {
			return `"created_at":"TIME"`
		}
		return "TIME"
	})
	out = rePort.ReplaceAllString(out, "${1}PORT")
	out = reReady.ReplaceAllString(out, "Ready in ELAPSED")
	out = reEd25519.ReplaceAllString(out, "ssh-ed25519 CLIENT_KEY")
	out = reSHA256.ReplaceAllString(out, "SHA256:FINGERPRINT")
	out = reTraceID.ReplaceAllString(out, "trace ID: TRACE")
	out = reRandomVM.ReplaceAllStringFunc(out, func(m string) string {
		first, _, _ := strings.Cut(m, "-")
		if randomWords[first] && !named[m] {
			return "RANDOM-NAME"
		}
		return m
	})
	return out
}

func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", "golden", name+".txt")
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (run with -update to accept):\n--- got ---\n%s\n--- want ---\n%s", file, got, want)
	}
}

// TestGoldenSFTPRefused pins the lobby's answer to the sftp subsystem.
func TestGoldenSFTPRefused(t *testing.T) {
	s := NewServer(t, WithoutSandbox())
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	sess, err := lobby.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	stdout, _ := sess.StdoutPipe()
	stderr, _ := sess.StderrPipe()
	if err := sess.RequestSubsystem("sftp"); err != nil {
		t.Fatal(err)
	}
	outb, _ := io.ReadAll(stdout)
	errb, _ := io.ReadAll(stderr)
	werr := sess.Wait()
	got := fmt.Sprintf("$ (sftp subsystem)\n%s%sexit status sent: %v\n",
		section("stdout", string(outb)), section("stderr", string(errb)), werr == nil)
	compareGolden(t, "sftp_refused", got)
	// The session is over: the client sees the channel closed.
	if _, ok := werr.(*ssh.ExitError); ok {
		t.Errorf("sftp refusal sent an exit status: %v", werr)
	}
}
