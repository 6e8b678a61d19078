package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/crypto/ssh"

	"github.com/moatdev/moat/internal/testenv"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
)

func TestMain(m *testing.M) {
	testscript.Main(hermeticConfig{m}, map[string]func(){
		"moat": func() {
			if os.Getenv(extraKindsVar) != "" {
				registerExtraKinds()
			}
			os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
		},
	})
}

// hermeticConfig runs the tests with XDG_CONFIG_HOME in a temporary
// directory, so that what they trust (moat init, moat trust) never reaches
// the user's own config directory.
type hermeticConfig struct{ m *testing.M }

func (h hermeticConfig) Run() int {
	dir, err := os.MkdirTemp("", "moat-test-config-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Setenv("XDG_CONFIG_HOME", dir)
	return h.m.Run()
}

// TestScripts runs testdata/script/*.txtar: the CLI as a user types it.
// Every script gets:
//
//   - `moat`, this package's main, and git with a configured identity
//     (in $HOME, a directory outside $WORK);
//   - its own exe.dev emulator, with MOAT_EXEDEV_LOBBY, MOAT_EXEDEV_KEY and
//     MOAT_EXEDEV_KNOWN_HOSTS pointing at it, so `--sandbox exedev` (the
//     default) runs there;
//   - $GREETER, the example agent (examples/agents/greeter.sh), and
//     $AGENTS, the agent packages' directory (their fake CLIs are in
//     $AGENTS/NAME/testdata);
//   - commands: emu-new NAME [TAG...] makes a VM on the emulator,
//     emu-restart [unregistered] replaces the emulator by a new one (which
//     does not know the client's key),
//     emu-vms N asserts how many VMs it has, emu-backdate NAME DURATION ages
//     a VM, emu-wait-file PATH waits until a VM has PATH (relative to
//     its home), wait-file GLOB waits until a file matches GLOB (relative
//     to $WORK), jsonl FILE checks a --json stream, path-without PROG...
//     takes programs off PATH (to try moat where they are not installed).
func TestScripts(t *testing.T) {
	testenv.RequireBinary(t, "git", "git")
	greeter, err := filepath.Abs("../../examples/agents/greeter.sh")
	if err != nil {
		t.Fatal(err)
	}
	agents, err := filepath.Abs("../../agent")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex                          // scripts run in parallel
	servers := map[string]*exedevtest.Server{} // by $WORK
	serverOf := func(ts *testscript.TestScript) *exedevtest.Server {
		mu.Lock()
		defer mu.Unlock()
		srv := servers[ts.Getenv("WORK")]
		if srv == nil {
			ts.Fatalf("no emulator for this script")
		}
		return srv
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// HOME is outside $WORK, so `git add .` in $WORK does not
			// pick it up.
			homeParent, err := os.MkdirTemp("", "moat-script-home-")
			if err != nil {
				return err
			}
			env.Defer(func() { os.RemoveAll(homeParent) })
			home := filepath.Join(homeParent, "home")
			if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
				return err
			}
			gitconfig := "[user]\n\tname = Script User\n\temail = script@example.com\n[init]\n\tdefaultBranch = main\n"
			if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(gitconfig), 0o644); err != nil {
				return err
			}
			srv, err := exedevtest.Start(exedevtest.WithNoIsolation()) // the scripts' own commands
			if err != nil {
				return err
			}
			env.Defer(func() { srv.Close() })
			mu.Lock()
			servers[env.WorkDir] = srv
			mu.Unlock()
			env.Setenv("HOME", home)
			// What a script trusts stays in its own config directory.
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(homeParent, "config"))
			env.Setenv("MOAT_EXEDEV_LOBBY", srv.LobbyAddr())
			env.Setenv("MOAT_EXEDEV_KEY", srv.KeyFile())
			env.Setenv("MOAT_EXEDEV_KNOWN_HOSTS", srv.KnownHostsFile())
			env.Setenv("GREETER", greeter)
			env.Setenv("AGENTS", agents)
			env.Setenv("SSH_AUTH_SOCK", "")
			env.Setenv("NO_COLOR", "")
			return nil
		},
		// [contained]: bubblewrap, slirp4netns and nsenter are installed,
		// so a local sandbox gets its isolated network. In CI they must be.
		Condition: func(cond string) (bool, error) {
			if cond != "contained" {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			_, bwrap := testenv.LookPath("bwrap")
			_, slirp := testenv.LookPath("slirp4netns")
			_, nsenter := testenv.LookPath("nsenter")
			if !(bwrap && slirp && nsenter) && testenv.InCI() {
				return false, errors.New("CI=true and bwrap, slirp4netns or nsenter is not installed (scripts/test.sh installs them)")
			}
			return bwrap && slirp && nsenter && runtime.GOOS == "linux", nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"emu-new": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 1 {
					ts.Fatalf("usage: emu-new NAME [TAG...]")
				}
				line := "new --json --no-email --name=" + args[0]
				for _, tag := range args[1:] {
					line += " --tag=" + tag
				}
				out, err := lobbyCommand(serverOf(ts), line)
				if err != nil && !neg {
					ts.Fatalf("emu-new: %v\n%s", err, out)
				}
				if err == nil && neg {
					ts.Fatalf("emu-new succeeded unexpectedly")
				}
			},
			"emu-vms": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: emu-vms COUNT")
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				got := serverOf(ts).VMs()
				if (len(got) == want) == neg {
					ts.Fatalf("emulator has %d VM(s) %v; want %s%d", len(got), got, map[bool]string{true: "not ", false: ""}[neg], want)
				}
			},
			"emu-restart": func(ts *testscript.TestScript, neg bool, args []string) {
				opts := []exedevtest.Option{exedevtest.WithNoIsolation()}
				for _, a := range args {
					switch a {
					case "unregistered":
						opts = append(opts, exedevtest.WithUnregisteredKey())
					default:
						ts.Fatalf("usage: emu-restart [unregistered]")
					}
				}
				serverOf(ts).Close()
				srv, err := exedevtest.Start(opts...)
				ts.Check(err)
				ts.Defer(func() { srv.Close() })
				mu.Lock()
				servers[ts.Getenv("WORK")] = srv
				mu.Unlock()
				ts.Setenv("MOAT_EXEDEV_LOBBY", srv.LobbyAddr())
				ts.Setenv("MOAT_EXEDEV_KEY", srv.KeyFile())
				ts.Setenv("MOAT_EXEDEV_KNOWN_HOSTS", srv.KnownHostsFile())
			},
			"emu-wait-file": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: emu-wait-file PATH (relative to a VM's home)")
				}
				srv := serverOf(ts)
				for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					for _, name := range srv.VMs() {
						if home, ok := srv.VMHome(name); ok {
							if _, err := os.Stat(filepath.Join(home, args[0])); err == nil {
								return
							}
						}
					}
				}
				ts.Fatalf("no VM has %s after 30s", args[0])
			},
			"emu-backdate": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 2 {
					ts.Fatalf("usage: emu-backdate NAME DURATION")
				}
				d, err := time.ParseDuration(args[1])
				ts.Check(err)
				ts.Check(serverOf(ts).Backdate(args[0], d))
			},
			"wait-file": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: wait-file GLOB (relative to $WORK)")
				}
				pattern := ts.MkAbs(args[0])
				for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if m, _ := filepath.Glob(pattern); len(m) > 0 {
						return
					}
				}
				ts.Fatalf("nothing matches %s after 60s", args[0])
			},
			"path-without": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) == 0 {
					ts.Fatalf("usage: path-without PROG...")
				}
				ts.Setenv("PATH", pathWithout(ts, ts.Getenv("PATH"), args))
			},
			"jsonl": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: jsonl FILE")
				}
				checkJSONL(ts, ts.MkAbs(args[0]))
			},
		},
	})
}

// pathWithout is path with the programs progs taken out: each directory
// holding one is replaced by a directory of symbolic links to everything
// else in it (outside $WORK, which scripts commit).
func pathWithout(ts *testscript.TestScript, path string, progs []string) string {
	var dirs []string
	for _, d := range filepath.SplitList(path) {
		ents, err := os.ReadDir(d)
		if err != nil || !slices.ContainsFunc(ents, func(e os.DirEntry) bool { return slices.Contains(progs, e.Name()) }) {
			dirs = append(dirs, d)
			continue
		}
		shadow, err := os.MkdirTemp("", "moat-script-path-")
		ts.Check(err)
		ts.Defer(func() { os.RemoveAll(shadow) })
		for _, e := range ents {
			if !slices.Contains(progs, e.Name()) {
				ts.Check(os.Symlink(filepath.Join(d, e.Name()), filepath.Join(shadow, e.Name())))
			}
		}
		dirs = append(dirs, shadow)
	}
	return strings.Join(dirs, string(os.PathListSeparator))
}

// lobbyCommand runs one lobby command on the emulator, as a user's ssh would.
func lobbyCommand(srv *exedevtest.Server, line string) (string, error) {
	pem, err := os.ReadFile(srv.KeyFile())
	if err != nil {
		return "", err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return "", err
	}
	c, err := ssh.Dial("tcp", srv.LobbyAddr(), &ssh.ClientConfig{
		User:            "script",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey()),
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(line)
	return string(out), err
}

// checkJSONL asserts that file is a --json stream: one JSON object per
// line, each with a "type" and a "time", the last one the "result".
func checkJSONL(ts *testscript.TestScript, file string) {
	f, err := os.Open(file)
	ts.Check(err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	var last map[string]any
	n := 0
	for sc.Scan() {
		n++
		var obj map[string]any
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
			ts.Fatalf("%s line %d is not a JSON object: %v\n%s", file, n, err, sc.Text())
		}
		typ, _ := obj["type"].(string)
		if typ == "" {
			ts.Fatalf("%s line %d has no \"type\": %s", file, n, sc.Text())
		}
		if _, ok := obj["time"].(string); !ok {
			ts.Fatalf("%s line %d has no \"time\": %s", file, n, sc.Text())
		}
		if last != nil && last["type"] == "result" {
			ts.Fatalf("%s: an event after the result (line %d)", file, n)
		}
		last = obj
	}
	ts.Check(sc.Err())
	if last == nil || last["type"] != "result" {
		ts.Fatalf("%s: the last of %d line(s) is not a result event", file, n)
	}
	ts.Logf("%s: %d JSON events, result %s", file, n, strings.TrimSpace(fmt.Sprint(last["ok"])))
}
