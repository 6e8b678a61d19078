package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat/internal/config"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox/exedev"
)

// defaultGCAge is how old a moat VM must be before `moat sandbox gc`
// removes it. A run creates its VM, uses it and deletes it, and runs
// usually last minutes: a moat VM older than an hour is most likely the
// leftover of a run that was killed before it could clean up. A run that
// really lasts longer keeps its VM with a larger --older-than.
const defaultGCAge = time.Hour

func newSandboxCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "List and remove the exe.dev VMs moat created",
		Example: `  moat sandbox ls
  moat sandbox rm moat-k3v9x2q7pa
  moat sandbox gc --older-than 2h --dry-run`,
		Long: `Every exe.dev VM moat creates carries the "moat" tag, and a run deletes its VM
when it ends. A run that was killed (kill -9, a lost laptop lid, a crash) can
leave its VM behind: these commands find and remove such VMs.

They use the exe.dev settings of the repository you are in (the [exedev]
table of .moat/config.toml and the MOAT_EXEDEV_* variables), and work
outside a repository too.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for \"moat sandbox\": use ls, rm or gc", args[0])
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(newSandboxLsCmd(), newSandboxRmCmd(), newSandboxGCCmd())
	return cmd
}

// sandboxProvider is the exe.dev provider for the sandbox commands: the
// repository's settings when the working directory is in one, the defaults
// (and MOAT_EXEDEV_* variables) otherwise. A broken config file is an
// error.
func sandboxProvider(ctx context.Context) (*exedev.Provider, error) {
	var c config.ExeDev
	p, err := loadProject(ctx, "")
	switch {
	case err == nil:
		// The lobby, key and known_hosts of an untrusted file are refused,
		// as moat run refuses them.
		if err := p.requireTrust(p.Config.ExeDev.HostSettings(), false, false); err != nil {
			return nil, err
		}
		c = p.Config.ExeDev
	case isUsageError(err):
		return nil, err // the config file or .moat/.env is broken
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	// Any other error: not in a git repository (or no git): defaults.
	return exedev.New(exedevConfig(c)), nil
}

func isUsageError(err error) bool {
	var ue *usageError
	return errors.As(err, &ue)
}

// lobbyFailure adds to an error reaching exe.dev where to look next. The
// lobby's own errors (unregistered key, quota) already say what to do.
func lobbyFailure(err error) error {
	var le *exedev.LobbyError
	if err == nil || errors.As(err, &le) || errors.Is(err, context.Canceled) {
		return err
	}
	var (
		ae *sshx.AuthError
		ke *sshx.KeyError
		he *sshx.HostKeyChangedError
	)
	if errors.As(err, &ae) || errors.As(err, &ke) || errors.As(err, &he) || sshx.IsConnectError(err) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w\n(moat doctor checks your SSH key and the connection to exe.dev)", err)
	}
	return err
}

// --- ls ---

type sandboxLsOptions struct {
	all     bool
	jsonOut bool
}

// vmJSON is one VM in `moat sandbox ls --json`. The field names are stable.
type vmJSON struct {
	Name       string   `json:"name"`
	Status     string   `json:"status"`
	Image      string   `json:"image"`
	Tags       []string `json:"tags"`
	CreatedAt  *string  `json:"created_at"`  // RFC 3339; null when exe.dev did not say
	AgeSeconds *int64   `json:"age_seconds"` // null when the creation time is unknown
}

func newSandboxLsCmd() *cobra.Command {
	var o sandboxLsOptions
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the exe.dev VMs moat created",
		Example: `  moat sandbox ls
  moat sandbox ls --all
  moat sandbox ls --json | jq -r '.[] | select(.age_seconds > 3600) | .name'`,
		Long: `Lists the exe.dev VMs that carry the "moat" tag (every VM moat creates does),
oldest first: name, age, status, image and tags. --all lists every VM on the
account. --json prints a JSON array instead (fields name, status, image,
tags, created_at (RFC 3339 or null), age_seconds (or null)).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runSandboxLs(cmd, o) },
	}
	cmd.Flags().BoolVar(&o.all, "all", false, "list every VM on the exe.dev account, not only moat's")
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print a JSON array on stdout")
	return cmd
}

func runSandboxLs(cmd *cobra.Command, o sandboxLsOptions) error {
	ctx := cmd.Context()
	p, err := sandboxProvider(ctx)
	if err != nil {
		return err
	}
	var vms []exedev.VMInfo
	if o.all {
		vms, err = p.ListAll(ctx)
	} else {
		vms, err = p.List(ctx)
	}
	if err != nil {
		return lobbyFailure(err)
	}
	now := time.Now()
	out := cmd.OutOrStdout()
	if o.jsonOut {
		return writeVMsJSON(out, vms, now)
	}
	if len(vms) == 0 {
		if o.all {
			fmt.Fprintln(out, "no VMs on the exe.dev account")
		} else {
			fmt.Fprintln(out, "no moat VMs (moat sandbox ls --all lists every VM on the account)")
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tAGE\tSTATUS\tIMAGE\tTAGS")
	for _, vm := range vms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", vm.Name, vmAge(vm, now), orDash(vm.Status), orDash(vm.Image), orDash(strings.Join(vm.Tags, ",")))
	}
	return tw.Flush()
}

func writeVMsJSON(w io.Writer, vms []exedev.VMInfo, now time.Time) error {
	list := make([]vmJSON, 0, len(vms))
	for _, vm := range vms {
		j := vmJSON{Name: vm.Name, Status: vm.Status, Image: vm.Image, Tags: vm.Tags}
		if j.Tags == nil {
			j.Tags = []string{}
		}
		if !vm.CreatedAt.IsZero() {
			ts := vm.CreatedAt.UTC().Format(time.RFC3339)
			age := int64(max(now.Sub(vm.CreatedAt), 0) / time.Second)
			j.CreatedAt, j.AgeSeconds = &ts, &age
		}
		list = append(list, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(list)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// vmAge is the VM's age for people ("45s", "12m", "3h", "2d"), "-" when
// unknown.
func vmAge(vm exedev.VMInfo, now time.Time) string {
	if vm.CreatedAt.IsZero() {
		return "-"
	}
	return humanAge(now.Sub(vm.CreatedAt))
}

func humanAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(d, 0)/time.Second)
	case d < time.Hour:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dd", d/(24*time.Hour))
}

// shortDuration prints a duration without zero units: "1h", "90m" as
// "1h30m", "30s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// --- rm ---

func newSandboxRmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm NAME...",
		Short: "Remove exe.dev VMs moat created",
		Long: `Removes the named exe.dev VMs. A VM without the "moat" tag was not made by
moat and is refused (it may be one of your own machines); --force removes it
anyway. Names that do not exist are reported.`,
		Example: `  moat sandbox rm moat-k3v9x2q7pa
  moat sandbox rm --force my-old-vm`,
		Args: usageArgs(func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("moat sandbox rm needs at least one VM name (moat sandbox ls lists them)")
			}
			return nil
		}),
		ValidArgsFunction: completeMoatVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSandboxRm(cmd, args, force)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "also remove VMs without the moat tag")
	return cmd
}

func runSandboxRm(cmd *cobra.Command, names []string, force bool) error {
	ctx := cmd.Context()
	p, release, err := heldProvider(ctx)
	if err != nil {
		return err
	}
	defer release()
	// List first: rm on exe.dev does not say whether a VM existed, and the
	// tags decide whether moat may remove it.
	all, err := p.ListAll(ctx)
	if err != nil {
		return lobbyFailure(err)
	}
	byName := map[string]exedev.VMInfo{}
	for _, vm := range all {
		byName[vm.Name] = vm
	}
	out := cmd.OutOrStdout()
	var failed []error
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		vm, ok := byName[name]
		switch {
		case !ok:
			failed = append(failed, fmt.Errorf("%s: no such VM on the exe.dev account (moat sandbox ls --all lists them)", name))
			continue
		case !vm.HasTag(exedev.Tag) && !force:
			failed = append(failed, fmt.Errorf("%s: not removed: it has no %q tag, so moat did not create it; --force removes it anyway", name, exedev.Tag))
			continue
		}
		if err := p.Remove(ctx, name); err != nil {
			failed = append(failed, lobbyFailure(err))
			continue
		}
		fmt.Fprintf(out, "removed %s\n", name)
	}
	return reportFailures(cmd.ErrOrStderr(), failed, "not removed")
}

// reportFailures returns the one failure, or prints several and returns a
// count.
func reportFailures(errOut io.Writer, failed []error, what string) error {
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return failed[0]
	}
	for _, err := range failed {
		printError(errOut, err)
	}
	return fmt.Errorf("%s %s", plural(len(failed), "VM", "VMs"), what)
}

// completeMoatVMs completes VM names with the moat VMs, quickly and
// silently: a shell completion must never hang or print errors.
func completeMoatVMs(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p, err := sandboxProvider(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	vms, err := p.List(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, vm := range vms {
		if strings.HasPrefix(vm.Name, toComplete) && !slices.Contains(args, vm.Name) {
			names = append(names, vm.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// --- gc ---

type sandboxGCOptions struct {
	olderThan time.Duration
	dryRun    bool
}

func newSandboxGCCmd() *cobra.Command {
	var o sandboxGCOptions
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove moat VMs left behind by interrupted runs",
		Long: `Removes the exe.dev VMs with the "moat" tag that are older than --older-than
(default 1h). A run deletes its VM when it ends, and runs usually last
minutes, so a moat VM older than an hour is most likely the leftover of a run
that was killed before it could clean up. A run in progress (here or on
another machine using the same exe.dev account) that has lasted longer would
lose its VM: give a larger --older-than when you run long jobs.

A VM whose creation time exe.dev does not report is never removed by gc
(moat sandbox rm NAME removes it). --dry-run lists what would be removed.`,
		Example: `  moat sandbox gc --dry-run
  moat sandbox gc --older-than 6h`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runSandboxGC(cmd, o) },
	}
	cmd.Flags().DurationVar(&o.olderThan, "older-than", defaultGCAge, "remove moat VMs older than this")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "list the VMs that would be removed, remove nothing")
	return cmd
}

func runSandboxGC(cmd *cobra.Command, o sandboxGCOptions) error {
	if o.olderThan < 0 {
		return usageErrorf("--older-than %s: want a duration of 0 or more, e.g. 1h", o.olderThan)
	}
	ctx := cmd.Context()
	p, release, err := heldProvider(ctx)
	if err != nil {
		return err
	}
	defer release()
	vms, err := p.List(ctx)
	if err != nil {
		return lobbyFailure(err)
	}
	out := cmd.OutOrStdout()
	now := time.Now()
	age := shortDuration(o.olderThan)
	old, undated, kept := gcSelect(vms, now, o.olderThan)
	for _, vm := range vms {
		if vm.HasTag(exedev.KeptTag) {
			fmt.Fprintf(out, "kept %s: it holds an agent's work moat could not bring out (see that run's output); moat sandbox rm %s removes it once the work is safe\n", vm.Name, vm.Name)
		}
	}
	for _, vm := range undated {
		fmt.Fprintf(out, "kept %s: exe.dev does not say when it was created, and gc removes only VMs it can date (moat sandbox rm %s removes it)\n", vm.Name, vm.Name)
	}
	removed := 0
	var failed []error
	for _, vm := range old {
		if o.dryRun {
			fmt.Fprintf(out, "would remove %s (age %s)\n", vm.Name, vmAge(vm, now))
			continue
		}
		if err := p.Remove(ctx, vm.Name); err != nil {
			failed = append(failed, lobbyFailure(err))
			continue
		}
		removed++
		fmt.Fprintf(out, "removed %s (age %s)\n", vm.Name, vmAge(vm, now))
	}
	if o.dryRun {
		fmt.Fprintf(out, "%s older than %s would be removed, %d kept (dry run: nothing was removed)\n", plural(len(old), "moat VM", "moat VMs"), age, kept)
	} else {
		fmt.Fprintf(out, "removed %s older than %s, %d kept\n", plural(removed, "moat VM", "moat VMs"), age, kept)
	}
	return reportFailures(cmd.ErrOrStderr(), failed, "not removed")
}

// gcSelect picks the VMs gc removes: those created at least olderThan
// before now. A VM with no creation time is never picked (undated), nor
// one moat kept because it holds an agent's work (exedev.KeptTag); kept
// counts every VM not picked.
func gcSelect(vms []exedev.VMInfo, now time.Time, olderThan time.Duration) (old, undated []exedev.VMInfo, kept int) {
	for _, vm := range vms {
		switch {
		case vm.HasTag(exedev.KeptTag):
			kept++
		case vm.CreatedAt.IsZero():
			undated = append(undated, vm)
			kept++
		case now.Sub(vm.CreatedAt) < olderThan:
			kept++
		default:
			old = append(old, vm)
		}
	}
	return old, undated, kept
}

// heldProvider is sandboxProvider with its lobby connection held open
// until release, for commands that talk to the lobby several times.
func heldProvider(ctx context.Context) (p *exedev.Provider, release func(), err error) {
	if p, err = sandboxProvider(ctx); err != nil {
		return nil, nil, err
	}
	if release, err = p.Hold(); err != nil {
		return nil, nil, lobbyFailure(err)
	}
	return p, release, nil
}
