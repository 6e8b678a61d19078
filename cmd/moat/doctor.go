package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat/internal/config"
	"github.com/moatdev/moat/internal/registry"
	"github.com/moatdev/moat/internal/worktree/hostgit"
	"github.com/moatdev/moat/sandbox"
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
	f.StringVar(&o.sandbox, "sandbox", "", "check for this sandbox: "+sandboxChoices()+" (default: the config's, else "+registry.DefaultSandbox()+")")
	f.StringVar(&o.network, "network", "", "check the local sandbox with this network: isolated, none or host (default: the config's, else isolated)")
	f.StringVar(&o.agent, "agent", "", "check the credentials of this agent: "+agentChoices()+" (default: the config's, else "+registry.DefaultAgent()+")")
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
		if err := checkAgentName(o.agent); err != nil {
			return usageErrorf("--agent %q: %w", o.agent, err)
		}
	}

	gitOK := d.checkGit(ctx)
	proj, inRepo := d.checkRepoAndConfig(ctx, gitOK)
	var cfg config.Config
	if proj != nil {
		cfg = proj.Config
	}
	sandboxSpec := firstSet(o.sandbox, cfg.Sandbox, registry.DefaultSandbox())
	agentName := firstSet(o.agent, cfg.Agent, registry.DefaultAgent())
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

	noIsolation, _ := checkNoIsolation(false, sandboxSpec)
	d.checkSandbox(ctx, sandboxSpec, sandbox.Env{
		Network: firstSet(o.network, cfg.Network), NoIsolation: noIsolation,
		Settings: cfg.SandboxSettings(), SettingsFile: config.File,
		Offline: o.offline, Timeout: o.timeout,
	})
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

// checkSandbox runs the sandbox kinds' checks (sandbox.Kind.Doctor):
// first those of spec's kind, then what the other kinds say about this
// computer, each check's name once. spec is "" when the config, which
// names it, could not be read.
func (d *doctor) checkSandbox(ctx context.Context, spec string, env sandbox.Env) {
	kinds := registry.Sandboxes.Kinds()
	if k, ok := registry.Sandboxes.Lookup(spec); ok {
		kinds = append([]sandbox.Kind{k}, kinds...)
	} else if spec != "" {
		d.report(stFail, "sandbox", fmt.Sprintf("unknown sandbox %q", spec),
			"fix: use "+sandboxChoices()+" (--sandbox, or sandbox in "+config.File+")")
	}
	seen := map[string]bool{}
	done := map[string]bool{}
	for _, k := range kinds {
		if k.Doctor == nil || done[k.Name] {
			continue
		}
		done[k.Name] = true
		for _, c := range k.Doctor(ctx, spec, env) {
			if !seen[c.Name] {
				seen[c.Name] = true
				d.report(string(c.Status), c.Name, c.Detail, c.More...)
			}
		}
	}
}

// checkCredentials: the agent's credential variables have a value in
// .moat/.env or the environment. Values are never printed.
func (d *doctor) checkCredentials(agentName string, proj *project, inRepo bool) {
	kind, known := registry.Agents.Lookup(agentName)
	keys := kind.Credentials
	if known && kind.Binary != "" {
		d.report(stInfo, "agent", fmt.Sprintf("%s (%s) runs %s in the sandbox, installed there when missing: %s", kind.Name, kind.Summary, kind.Binary, kind.Install))
	}
	switch {
	case !known:
		d.report(stFail, "agent", fmt.Sprintf("unknown agent %q", agentName),
			"fix: use "+agentChoices()+" (--agent, or agent in .moat/config.toml)")
	case len(keys) == 0:
		d.report(stSkip, "credentials", "agent "+agentName+": it gets what you pass with --env or .moat/.env")
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
