package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat/internal/config"
	"github.com/moatdev/moat/internal/trust"
)

// untrustedError is a config file that sets what acts on the host, and
// whose content the user has not trusted.
type untrustedError struct {
	settings []config.Setting
	oneRun   bool // the command takes --trust-config
}

func (e *untrustedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is not trusted, and it sets what would act on this computer or take from it:\n", config.File)
	writeSettings(&b, e.settings)
	fmt.Fprintf(&b, "Nothing was run. Read %s; if you trust it, run: moat trust", config.File)
	if e.oneRun {
		b.WriteString("\n(or pass --trust-config to trust it for this run only)")
	}
	return b.String()
}

func writeSettings(w io.Writer, settings []config.Setting) {
	for _, s := range settings {
		fmt.Fprintf(w, "  %s\n      %s\n", s, s.Does)
	}
}

// requireTrust refuses a project whose config file sets host settings
// (those listed, or all of them when settings is nil) and is not trusted,
// unless oneRun (--trust-config) trusts it for this command.
func (p *project) requireTrust(settings []config.Setting, oneRun, takesFlag bool) error {
	if p.Trusted || oneRun || len(settings) == 0 {
		return nil
	}
	return &usageError{&untrustedError{settings: settings, oneRun: takesFlag}}
}

type trustOptions struct {
	repo   string
	show   bool
	forget bool
}

func newTrustCmd() *cobra.Command {
	var o trustOptions
	cmd := &cobra.Command{
		Use:   "trust [--show | --forget]",
		Short: "Trust this repository's .moat/config.toml as it is now",
		Long: `A repository's .moat/config.toml is written by whoever wrote the
repository. The settings in it that act on this computer or take from it —
hooks.on_worktree_ready (commands run on the host), env (variables passed
from your environment into the sandbox), an ssh:// sandbox, and the
[exedev] lobby, identity_file and known_hosts_file — take effect only once
you trust the file's exact content. Until then moat run and moat exec stop
before anything runs (exit 2) and list them; --trust-config trusts the file
for one run (for CI).

moat trust records the SHA-256 of the file's content for this repository in
your config directory (` + trust.FileName + ` under $XDG_CONFIG_HOME or
~/.config); a changed file needs trusting again. moat init trusts what it
writes. Settings that only shape the sandbox (agent, model, iterations,
timeouts, branch, on_sandbox_ready hooks) never need trust, and prompt_file
and copy must stay inside the repository, trusted or not.`,
		Example: `  moat trust --show    # what the file would be allowed to do
  moat trust           # trust it as it is now
  moat trust --forget  # stop trusting it`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runTrust(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.repo, "repo", "", "the repository (default: the one holding the working directory)")
	f.BoolVar(&o.show, "show", false, "print what trusting the file would allow, and whether it is trusted; change nothing")
	f.BoolVar(&o.forget, "forget", false, "stop trusting the file")
	return cmd
}

func runTrust(cmd *cobra.Command, o trustOptions) error {
	out := cmd.OutOrStdout()
	if o.show && o.forget {
		return usageErrorf("--show and --forget cannot be used together")
	}
	p, err := loadProject(cmd.Context(), o.repo)
	if err != nil {
		return err
	}
	store, err := trust.Default()
	if err != nil {
		return err
	}
	if o.forget {
		if err := store.Forget(p.Root); err != nil {
			return err
		}
		fmt.Fprintf(out, "moat: %s in %s is no longer trusted\n", config.File, p.Root)
		return nil
	}
	if !p.ConfigFound {
		return usageErrorf("%s has no %s: there is nothing to trust", p.Root, config.File)
	}
	settings := p.Config.HostSettings()
	if o.show {
		state := "not trusted"
		if p.Trusted {
			state = "trusted"
		}
		fmt.Fprintf(out, "%s in %s (sha256 %s) is %s.\n", config.File, p.Root, p.ConfigHash, state)
		if len(settings) == 0 {
			fmt.Fprintln(out, "It sets nothing that acts on this computer or takes from it; it needs no trust.")
			return nil
		}
		fmt.Fprintln(out, "Trusting it allows:")
		writeSettings(out, settings)
		return nil
	}
	if err := store.Trust(p.Root, p.ConfigHash); err != nil {
		return err
	}
	fmt.Fprintf(out, "moat: trusted %s in %s (sha256 %s)\n", config.File, p.Root, p.ConfigHash[:12])
	if len(settings) > 0 {
		fmt.Fprintln(out, "It may now:")
		writeSettings(out, settings)
	}
	fmt.Fprintln(out, "A change to the file needs 'moat trust' again.")
	return nil
}
