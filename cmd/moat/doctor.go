package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat/internal/config"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
	"github.com/moatdev/moat/sandbox/local"
)

// errDoctorFailed is returned by `moat doctor` when a needed check failed
// (moat exits 1). Warnings do not fail.
var errDoctorFailed = errors.New("some checks failed")

type doctorOptions struct {
	offline bool
	sandbox string
	network string
	agent   string
	timeout time.Duration
}

func newDoctorCmd() *cobra.Command {
	var o doctorOptions
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check git, SSH keys, exe.dev and agent credentials",
		Example: `  moat doctor                      # everything, for the sandbox in .moat/config.toml
  moat doctor --sandbox local      # only what a local sandbox needs
  moat doctor --offline --agent codex`,
		Long: `Checks what moat needs, one line per check:

  git          installed, and whether you are in a git repository
  config       .moat/config.toml is valid
  ssh key      which key moat offers to exe.dev, and why
  ssh agent    whether moat consults the SSH agent, and what it holds
  known_hosts  whether exe.dev's host key is already known
  exe.dev      the lobby answers and your key is registered (whoami)
  bubblewrap   local sandboxes are isolated
  containment  what a local sandbox runs in: bubblewrap or not, its network
               (isolated, none or host) and the slirp4netns that isolated uses
  credentials  the agent's credentials are set in .moat/.env or your environment

Each line starts with ok, info, warn, FAIL or skip; a failure says how to fix
it. moat exits 1 when a needed check fails; warnings do not fail. The SSH and
exe.dev checks follow the sandbox (--sandbox, else sandbox in
.moat/config.toml, else exedev): local needs none, the emulator brings its
own key. --offline skips the network check.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runDoctor(cmd, o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.offline, "offline", false, "skip the checks that need the network (the exe.dev lobby)")
	f.StringVar(&o.sandbox, "sandbox", "", "check for this sandbox: exedev, emulator, local or ssh://[user@]host[:port] (default: the config's, else exedev)")
	f.StringVar(&o.network, "network", "", "check the local sandbox with this network: isolated, none or host (default: the config's, else isolated)")
	f.StringVar(&o.agent, "agent", "", "check the credentials of this agent: claude, codex or command (default: the config's, else claude)")
	f.DurationVar(&o.timeout, "timeout", 15*time.Second, "how long to wait for the exe.dev lobby")
	registerCompletions(cmd)
	return cmd
}

// doctor prints check results and counts failures.
type doctor struct {
	out            io.Writer
	failed, warned int
}

const (
	stOK   = "ok"
	stInfo = "info"
	stWarn = "warn"
	stFail = "FAIL"
	stSkip = "skip"
)

// report prints one check: its status, name and detail, then more lines
// (details, "fix: …") indented under the name.
func (d *doctor) report(status, name, detail string, more ...string) {
	fmt.Fprintf(d.out, "%-4s %s: %s\n", status, name, detail)
	for _, m := range more {
		if m != "" {
			fmt.Fprintf(d.out, "     %s\n", m)
		}
	}
	switch status {
	case stFail:
		d.failed++
	case stWarn:
		d.warned++
	}
}

func runDoctor(cmd *cobra.Command, o doctorOptions) error {
	ctx := cmd.Context()
	d := &doctor{out: cmd.OutOrStdout()}
	// Bad flag values are usage errors (exit 2), like everywhere else;
	// only settings from the config file become FAIL lines.
	if o.timeout <= 0 {
		return usageErrorf("--timeout %s: want a positive duration such as 15s", o.timeout)
	}
	if o.sandbox != "" {
		if err := config.CheckSandbox(o.sandbox); err != nil {
			return usageErrorf("--sandbox %q: %w", o.sandbox, err)
		}
	}
	if o.network != "" {
		if err := config.CheckNetwork(o.network); err != nil {
			return usageErrorf("--network %q: %w", o.network, err)
		}
	}
	if o.agent != "" {
		if err := checkInitAgent(o.agent); err != nil {
			return usageErrorf("--agent %q: %w", o.agent, err)
		}
	}

	gitOK := d.checkGit(ctx)
	proj, inRepo := d.checkRepoAndConfig(ctx, gitOK)
	var cfg config.Config
	if proj != nil {
		cfg = proj.Config
	}
	sandboxSpec := firstSet(o.sandbox, cfg.Sandbox, "exedev")
	agentName := firstSet(o.agent, cfg.Agent, "claude")
	configBroken := inRepo && proj == nil
	// The config names the sandbox and the agent; when it cannot be read,
	// checking the defaults' needs could report failures that do not apply.
	if configBroken && o.sandbox == "" {
		sandboxSpec = ""
	}
	if configBroken && o.agent == "" {
		agentName = ""
	}
	d.report(stInfo, "settings", fmt.Sprintf("sandbox %s, agent %s", orUnknown(sandboxSpec, "--sandbox"), orUnknown(agentName, "--agent")))

	switch {
	case sandboxSpec == "":
		for _, name := range []string{"ssh key", "ssh agent", "known_hosts", "exe.dev"} {
			d.report(stSkip, name, "the sandbox is not known until the config is fixed")
		}
	case sandboxSpec == "exedev":
		d.checkExeDev(ctx, o, cfg)
	case sandboxSpec == "emulator":
		for _, name := range []string{"ssh key", "ssh agent", "known_hosts", "exe.dev"} {
			d.report(stSkip, name, "the emulator brings its own key and runs on this machine")
		}
		d.checkEmulator()
	case sandboxSpec == "local":
		for _, name := range []string{"ssh key", "ssh agent", "known_hosts", "exe.dev"} {
			d.report(stSkip, name, "not used by local sandboxes")
		}
	case strings.HasPrefix(sandboxSpec, "ssh://"):
		d.checkSSHHost(ctx, sandboxSpec)
	default:
		d.report(stFail, "sandbox", fmt.Sprintf("unknown sandbox %q", sandboxSpec),
			"fix: use exedev, emulator, local or ssh://[user@]host[:port] (--sandbox, or sandbox in .moat/config.toml)")
	}

	d.checkBwrap(ctx, sandboxSpec == "local")
	d.checkContainment(ctx, firstSet(o.network, cfg.Network), sandboxSpec == "local")
	if agentName == "" {
		d.report(stSkip, "credentials", "the agent is not known until the config is fixed")
	} else {
		d.checkCredentials(agentName, proj, inRepo)
	}

	switch {
	case d.failed > 0:
		fmt.Fprintf(d.out, "\n%s failed%s\n", plural(d.failed, "check", "checks"), warnings(d.warned))
		return errDoctorFailed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	fmt.Fprintf(d.out, "\nall needed checks passed%s\n", warnings(d.warned))
	return nil
}

func warnings(n int) string {
	if n == 0 {
		return ""
	}
	return ", " + plural(n, "warning", "warnings")
}

func firstSet(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// checkGit: git is installed, and its version.
func (d *doctor) checkGit(ctx context.Context) bool {
	path, err := exec.LookPath("git")
	if err != nil {
		d.report(stFail, "git", "git is not on PATH", "fix: install git (moat runs the real git)")
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		d.report(stFail, "git", fmt.Sprintf("%s --version failed: %v", path, err), "fix: reinstall git")
		return false
	}
	d.report(stOK, "git", strings.TrimSpace(string(out)))
	return true
}

// checkRepoAndConfig: the working directory's repository, and its
// .moat/config.toml and .moat/.env. It returns the project when they load.
func (d *doctor) checkRepoAndConfig(ctx context.Context, gitOK bool) (*project, bool) {
	if !gitOK {
		d.report(stSkip, "repository", "needs git")
		d.report(stSkip, "config", "needs git")
		return nil, false
	}
	wd, err := os.Getwd()
	if err != nil {
		d.report(stFail, "repository", err.Error())
		return nil, false
	}
	repo, err := hostgit.Locate(ctx, 30*time.Second, wd)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "is not inside a git repository") {
			msg = wd + " is not in a git repository"
		}
		d.report(stWarn, "repository", msg,
			"moat run and moat exec work on a git repository: run them (and moat doctor) inside yours")
		d.report(stInfo, "config", "not in a repository: the defaults and MOAT_* variables apply")
		return nil, false
	}
	var noCommits *hostgit.NoCommitsError
	if _, err := hostgit.Head(ctx, 30*time.Second, repo.TopLevel); errors.As(err, &noCommits) {
		d.report(stWarn, "repository", repo.TopLevel+" has no commits yet, and a run starts from one",
			"fix: git commit --allow-empty -m init")
	} else {
		d.report(stOK, "repository", repo.TopLevel)
	}
	p, err := loadProject(ctx, wd)
	if err != nil {
		d.report(stFail, "config", err.Error())
		return nil, true
	}
	if !p.ConfigFound {
		d.report(stInfo, "config", "no "+config.File+" (moat init creates one); the defaults apply")
	} else {
		d.report(stOK, "config", filepath.Join(p.Root, config.File))
		if hs := p.Config.HostSettings(); len(hs) > 0 && !p.Trusted {
			keys := make([]string, len(hs))
			for i, h := range hs {
				keys[i] = h.Key
			}
			d.report(stWarn, "trust", config.File+" is not trusted and sets "+strings.Join(keys, ", ")+"; moat run refuses it until you trust it, and doctor checks without them",
				"read it, then run 'moat trust' (moat trust --show lists what it would allow)")
			p.Config = p.Config.WithoutHostSettings()
		}
	}
	return p, true
}

// checkExeDev: the SSH key moat offers to the exe.dev lobby, the agent,
// known_hosts, and (unless offline) the lobby itself.
func (d *doctor) checkExeDev(ctx context.Context, o doctorOptions, cfg config.Config) {
	ecfg := exedevConfig(cfg.ExeDev)
	p := exedev.New(ecfg)
	lobby := p.LobbySSHConfig()
	ex, exErr := sshx.Explain(ctx, lobby)

	keyFrom := ""
	switch {
	case os.Getenv("MOAT_EXEDEV_KEY") != "":
		keyFrom = "MOAT_EXEDEV_KEY"
	case cfg.ExeDev.IdentityFile != "":
		keyFrom = "identity_file in " + config.File
	}
	keyOK := d.checkKey(ex, exErr, keyFrom, p.LobbySSHCommand())
	d.checkAgent(ex)
	d.checkKnownHosts(ex, displayHost(lobby.Host))

	switch {
	case o.offline:
		d.report(stSkip, "exe.dev", "--offline")
	case !keyOK:
		d.report(stSkip, "exe.dev", "no usable SSH key (see above)")
	default:
		d.checkLobby(ctx, p, ex, o.timeout)
	}
}

// displayHost is host:port without the default port.
func displayHost(hostport string) string {
	if h, port, err := net.SplitHostPort(hostport); err == nil && port == "22" {
		return h
	}
	return hostport
}

// withIdentity turns "ssh exe.dev" into "ssh -i FILE exe.dev".
func withIdentity(sshCmd, file string) string {
	if file == "" {
		return sshCmd
	}
	return "ssh -i " + file + " " + strings.TrimPrefix(sshCmd, "ssh ")
}

// checkKey reports the key moat would offer and why. It returns whether
// there is one.
func (d *doctor) checkKey(ex sshx.Explanation, exErr error, keyFrom, lobbyCmd string) bool {
	why := ex.Reason
	if ex.Source == sshx.KeysExplicit && keyFrom != "" {
		why = keyFrom + ": " + why
	}
	if exErr != nil {
		var ke *sshx.KeyError
		if !errors.As(exErr, &ke) {
			d.report(stFail, "ssh key", exErr.Error())
			return false
		}
		more := []string{}
		if why != "" {
			more = append(more, "why: "+why)
		}
		switch {
		case ke.Encrypted:
			// The message says how (ssh-add).
		case ex.Source == sshx.KeysExplicit && keyFrom != "":
			more = append(more, "fix: point "+keyFrom+" at your exe.dev private key, or remove it to use ~/.ssh/id_exe")
		case ex.Source == sshx.KeysPreferred:
			more = append(more, "fix: "+ke.File+" must be a private key SSH can read (ssh-keygen -y -f "+ke.File+" checks it), or move it away")
		}
		d.report(stFail, "ssh key", exErr.Error(), more...)
		return false
	}
	var notes []string
	for _, n := range ex.Notes {
		notes = append(notes, "note: "+n)
	}
	if len(ex.Offered) == 0 {
		more := append([]string{"why: " + why}, notes...)
		more = append(more,
			"fix: create exe.dev's key: ssh-keygen -t ed25519 -f ~/.ssh/id_exe (moat then uses it alone)",
			"     then register it with exe.dev: "+withIdentity(lobbyCmd, "~/.ssh/id_exe")+" (signs you up),",
			"     or, from a key that is registered: "+lobbyCmd+" ssh-key add < ~/.ssh/id_exe.pub")
		d.report(stFail, "ssh key", "no SSH key to offer to exe.dev", more...)
		return false
	}
	if len(ex.Offered) == 1 {
		d.report(stOK, "ssh key", ex.Offered[0].Description, append([]string{"why: " + why}, notes...)...)
		return true
	}
	more := []string{}
	for i, k := range ex.Offered {
		more = append(more, fmt.Sprintf("%d. %s", i+1, k.Description))
	}
	more = append(more, "why: "+why)
	d.report(stOK, "ssh key", fmt.Sprintf("%d keys offered, in this order:", len(ex.Offered)), append(more, notes...)...)
	return true
}

// checkAgent: whether moat consults the SSH agent, and what it holds.
func (d *doctor) checkAgent(ex sshx.Explanation) {
	a := ex.Agent
	holds := ""
	if a.Problem == "" {
		holds = fmt.Sprintf("the agent at %s holds %s", a.Socket, plural(len(a.Keys), "key", "keys"))
	}
	switch {
	case ex.Dest == "" || a.Socket == "" && a.Problem == "":
		d.report(stSkip, "ssh agent", "not checked: the SSH settings could not be used (see above)")
	case !a.Consulted && (ex.Source == sshx.KeysExplicit || ex.Source == sshx.KeysPreferred):
		detail := "not consulted: moat uses its one key alone"
		if len(ex.Offered) == 1 && ex.Offered[0].File != "" {
			detail = "not consulted: moat uses " + ex.Offered[0].File + " alone"
		}
		if holds != "" {
			detail += " (" + holds + ")"
		}
		d.report(stInfo, "ssh agent", detail)
	case !a.Consulted:
		d.report(stInfo, "ssh agent", "not consulted (IdentitiesOnly yes in your ssh_config)")
	case a.Problem != "" && len(ex.Offered) == 0:
		d.report(stWarn, "ssh agent", a.Problem, "start one (eval $(ssh-agent); ssh-add) or create ~/.ssh/id_exe")
	case a.Problem != "":
		d.report(stInfo, "ssh agent", a.Problem+"; the key files above are used")
	default:
		d.report(stOK, "ssh agent", holds)
	}
}

// checkKnownHosts: whether the host's key is already known.
func (d *doctor) checkKnownHosts(ex sshx.Explanation, host string) {
	switch {
	case ex.KnownHostsErr != nil:
		d.report(stFail, "known_hosts", ex.KnownHostsErr.Error(), "fix: repair or move away the known_hosts file named")
	case ex.KnownHostsFile == "":
		d.report(stSkip, "known_hosts", "not checked: the SSH settings could not be used (see above)")
	case ex.HostKnown:
		d.report(stOK, "known_hosts", fmt.Sprintf("%s is known (%s)", host, ex.KnownHostsFile))
	default:
		d.report(stInfo, "known_hosts", fmt.Sprintf("%s is not in %s yet: the first connection trusts its host key and records it there (accept-new); a changed key is refused later", host, ex.KnownHostsFile))
	}
}

// checkLobby: the lobby answers, and the key is registered.
func (d *doctor) checkLobby(ctx context.Context, p *exedev.Provider, ex sshx.Explanation, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	acct, err := p.Whoami(ctx)
	lobbyCmd := p.LobbySSHCommand()
	keyFile, keyLabel := "", ""
	if len(ex.Offered) > 0 {
		keyFile, keyLabel = ex.Offered[0].File, ex.Offered[0].Label
	}
	register := []string{
		"fix: register the key with exe.dev: " + withIdentity(lobbyCmd, keyFile) + " (sign-up, with e-mail verification),",
	}
	if keyFile != "" {
		register = append(register, "     or, from a key that is registered: "+lobbyCmd+" ssh-key add < "+keyFile+".pub")
	}
	var (
		ae *sshx.AuthError
		he *sshx.HostKeyChangedError
	)
	switch {
	case err == nil:
		detail := "answers; the key is registered"
		if acct.Email != "" {
			detail += " to " + acct.Email
		}
		if k, ok := acct.CurrentKey(); ok && k.Name != "" {
			detail += " (as " + k.Name + ")"
		}
		d.report(stOK, "exe.dev", detail)
	case errors.Is(err, exedev.ErrUnregistered):
		what := "this SSH key is not registered with an exe.dev account"
		if keyLabel != "" {
			what = "the SSH key " + keyLabel + " is not registered with an exe.dev account"
		}
		d.report(stFail, "exe.dev", what, register...)
	case errors.Is(err, exedev.ErrAccountLocked):
		d.report(stFail, "exe.dev", err.Error(), "fix: contact support@exe.dev with the trace id above")
	case errors.As(err, &ae):
		d.report(stFail, "exe.dev", "the lobby refused the key(s) offered: "+strings.Join(ae.Offered, ", "), register...)
	case errors.As(err, &he):
		d.report(stFail, "exe.dev", err.Error())
	case errors.Is(err, context.DeadlineExceeded) || sshx.IsConnectError(err):
		d.report(stFail, "exe.dev", fmt.Sprintf("no answer from the lobby within %s: %v", timeout, err),
			"fix: check your network; exe.dev drops bursts of new connections from one address, so wait a few minutes and retry (--offline skips this check)")
	default:
		d.report(stFail, "exe.dev", err.Error())
	}
}

// checkSSHHost: the key moat offers to an ssh:// sandbox host.
func (d *doctor) checkSSHHost(ctx context.Context, spec string) {
	user, hostPort, err := config.SplitSSH(spec)
	if err != nil {
		d.report(stFail, "sandbox", fmt.Sprintf("sandbox %q: %v", spec, err))
		return
	}
	ex, err := sshx.Explain(ctx, sshx.Config{Host: hostPort, User: user})
	if err != nil {
		d.report(stFail, "ssh key", err.Error())
	} else if len(ex.Offered) == 0 {
		more := []string{"why: " + ex.Reason}
		for _, n := range ex.Notes {
			more = append(more, "note: "+n)
		}
		more = append(more, "fix: create a key (ssh-keygen -t ed25519) and authorize it on "+hostPort+" (ssh-copy-id), or name one with IdentityFile in ~/.ssh/config")
		d.report(stFail, "ssh key", "no SSH key to offer to "+ex.Dest, more...)
	} else {
		descs := make([]string, len(ex.Offered))
		for i, k := range ex.Offered {
			descs[i] = k.Description
		}
		d.report(stOK, "ssh key", strings.Join(descs, ", "), "why: "+ex.Reason)
	}
	if ex.Dest != "" {
		d.checkAgent(ex)
		d.checkKnownHosts(ex, hostPort)
	}
	d.report(stSkip, "exe.dev", "the sandbox is an SSH host, not exe.dev")
}

// checkBwrap: local sandboxes run inside bubblewrap. Never a failure:
// without it local sandboxes still work, unisolated.
func (d *doctor) checkBwrap(ctx context.Context, needed bool) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	path, err := local.CheckBwrap(ctx)
	switch {
	case err == nil:
		d.report(stOK, "bubblewrap", path+" works: local sandboxes are isolated")
	case runtime.GOOS != "linux":
		d.report(stInfo, "bubblewrap", err.Error())
	case needed:
		d.report(stWarn, "bubblewrap", err.Error(), "fix: install bubblewrap (e.g. apt install bubblewrap)")
	default:
		d.report(stInfo, "bubblewrap", err.Error()+" (only --sandbox local uses it)")
	}
}

// checkEmulator: the emulator contains its VMs, or refuses to run unless
// told --no-isolation (MOAT_EMULATOR_NO_ISOLATION=1 here).
func (d *doctor) checkEmulator() {
	err := exedevtest.CheckContainment()
	noIsolation, _ := checkNoIsolation(false, "emulator")
	switch {
	case err == nil:
		d.report(stOK, "emulator", "VMs contained: own PID, IPC, UTS and mount namespaces, own home and /tmp, system directories read-only; the network is this computer's")
	case noIsolation:
		d.report(stWarn, "emulator", err.Error(), "note: MOAT_EMULATOR_NO_ISOLATION is set: VM commands run as plain processes on this computer, as you")
	default:
		d.report(stFail, "emulator", err.Error(), "fix: install what is missing; or pass --no-isolation to moat run and moat exec (MOAT_EMULATOR_NO_ISOLATION=1) to run VM commands unisolated, as plain processes on this computer")
	}
}

// checkContainment: what a local sandbox runs in, as Create would find it.
// It fails only when the sandbox is local and moat would refuse to run.
func (d *doctor) checkContainment(ctx context.Context, network string, needed bool) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	p := local.New(local.Config{Network: local.Network(network), Logger: slog.New(slog.DiscardHandler)})
	c, err := p.Containment(ctx)
	status := func(s string) string {
		if needed {
			return s
		}
		return stInfo
	}
	switch {
	case err != nil:
		d.report(status(stFail), "containment", err.Error())
	case c.Bwrap == "":
		d.report(status(stWarn), "containment", c.String()+": commands can write anywhere you can and reach everything on this computer")
	case c.Network == local.NetworkHost:
		d.report(status(stWarn), "containment", c.String()+": the sandbox reaches this computer's loopback services and abstract Unix sockets",
			"fix: leave out --network host (and network = \"host\" in "+config.File+") unless the agent needs them")
	case c.Network == local.NetworkIsolated:
		d.report(stOK, "containment", c.String()+": its own network namespace, outbound connections and DNS through "+c.Stack+"; this computer's loopback services and abstract Unix sockets unreachable")
	default:
		d.report(stOK, "containment", c.String()+": no network at all (an agent cannot reach its model's API)")
	}
}

// checkCredentials: the agent's credential variables have a value in
// .moat/.env or the environment. Values are never printed.
func (d *doctor) checkCredentials(agentName string, proj *project, inRepo bool) {
	var keys []string
	switch agentName {
	case "command":
		d.report(stSkip, "credentials", "agent command: it gets what you pass with --env or .moat/.env")
	case "claude", "codex":
		ag, err := pickAgent(agentName, "", "")
		if err != nil {
			d.report(stFail, "credentials", err.Error())
			return
		}
		keys = ag.CredentialEnv()
	default:
		d.report(stFail, "agent", fmt.Sprintf("unknown agent %q", agentName),
			"fix: use claude, codex or command (--agent, or agent in .moat/config.toml)")
	}

	var envFile string
	if proj != nil {
		envFile = filepath.Join(proj.Root, config.EnvFile)
	}
	if len(keys) > 0 {
		var set []string
		for _, k := range keys {
			switch {
			case proj != nil && proj.Env.Values[k] != "":
				set = append(set, k+" set in "+config.EnvFile)
			case os.Getenv(k) != "":
				set = append(set, k+" set in your environment")
			}
		}
		if len(set) > 0 {
			d.report(stOK, "credentials", fmt.Sprintf("%s: %s", agentName, strings.Join(set, ", ")))
		} else {
			msg, fix := missingCredentials(agentName, keys, proj, inRepo)
			d.report(stFail, "credentials", msg, fix)
		}
	}

	// The credentials file must be private.
	if envFile == "" || runtime.GOOS == "windows" {
		return
	}
	st, err := os.Stat(envFile)
	if err != nil {
		return
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		d.report(stWarn, config.EnvFile, fmt.Sprintf("readable by others than you (mode %04o); it holds credentials", perm),
			"fix: chmod 600 "+envFile)
	}
}

// missingCredentials says that agentName has none of its credential
// variables keys, and how to give it one: what doctor reports, and why a
// run refuses to start.
func missingCredentials(agentName string, keys []string, proj *project, inRepo bool) (msg, fix string) {
	var envFile string
	if proj != nil {
		envFile = filepath.Join(proj.Root, config.EnvFile)
	}
	switch {
	case !inRepo:
		fix = "fix: export one of them, or put it in " + config.EnvFile + " of your repository"
	case proj == nil: // the config did not load
		fix = "fix: put one of them in " + config.EnvFile + ", or export it"
	case fileExists(filepath.Join(proj.Root, ".moat", ".env.example")) && !fileExists(envFile):
		fix = "fix: cp .moat/.env.example .moat/.env, then give one of them a value there"
	case fileExists(envFile):
		fix = "fix: give one of them a value in " + config.EnvFile + " (or export it)"
	default:
		fix = "fix: put one of them in " + config.EnvFile + " (moat init writes .moat/.env.example), or export it"
	}
	msg = fmt.Sprintf("%s needs one of %s: none is set in %s or your environment", agentName, strings.Join(keys, ", "), config.EnvFile)
	return msg, fix
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// orUnknown is v, or what to say when the broken config hides it.
func orUnknown(v, flag string) string {
	if v == "" {
		return "unknown (the config could not be read; " + flag + " chooses)"
	}
	return v
}
