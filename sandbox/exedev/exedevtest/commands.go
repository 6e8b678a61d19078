package exedevtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/ssh"
)

// cmdCtx is one lobby command being run.
type cmdCtx struct {
	s      *Server
	ss     *session // nil outside an SSH session
	user   string   // SSH username of the connection
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	json   bool
}

// errw is where errors go: stdout, like the current server, unless
// WithErrorsOnStderr.
func (c *cmdCtx) errw() io.Writer {
	if c.s.opts.errorsOnStderr {
		return c.stderr
	}
	return c.stdout
}

// fail writes an error the way exe.dev does and returns exit status 1.
func (c *cmdCtx) fail(msg string) int {
	if c.json {
		b, _ := json.Marshal(map[string]string{"error": msg})
		c.errw().Write(append(b, '\n'))
	} else {
		io.WriteString(c.errw(), msg+"\n")
	}
	return 1
}

func (c *cmdCtx) failf(format string, args ...any) int { return c.fail(fmt.Sprintf(format, args...)) }

// writeJSON writes v as compact JSON and a newline.
func (c *cmdCtx) writeJSON(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return c.fail(err.Error())
	}
	c.stdout.Write(append(b, '\n'))
	return 0
}

func (c *cmdCtx) printf(format string, args ...any) { fmt.Fprintf(c.stdout, format, args...) }

// command is one lobby command.
type command struct {
	name     string
	summary  string
	usage    string
	examples []string
	args     int // most positional arguments allowed; -1 means any
	// flags defines the command's flags on fs and returns the command body,
	// which receives the positional arguments.
	flags func(fs *flag.FlagSet) func(c *cmdCtx, args []string) int
}

var commands map[string]*command

// unsupported are real exe.dev commands the emulator does not implement.
var unsupported = []string{
	"doc", "rename", "resize", "comment", "domain", "share", "ssh-key",
	"set-region", "integrations", "team", "pool", "billing", "invite",
	"shelley", "browser", "grant-support-root", "exit", "stat", "pause",
	"resume", "lock", "unlock", "exe0-to-exe1",
}

func init() {
	commands = map[string]*command{}
	for _, c := range []*command{cmdHelp, cmdLs, cmdNew, cmdRm, cmdRestart, cmdTag, cmdCp, cmdWhoami, cmdSSH} {
		commands[c.name] = c
	}
}

// dispatch runs one command line (already split) and returns its exit
// status.
func (s *Server) dispatch(c *cmdCtx, words []string) int {
	c.json = wantsJSON(words)
	if len(words) == 0 {
		return helpAll(c)
	}
	name := words[0]
	cmd, ok := commands[name]
	if !ok {
		for _, u := range unsupported {
			if u == name {
				return c.failf("%q is not supported by the exe.dev emulator", name)
			}
		}
		return c.failf("exe.dev repl: command not found: %q", strings.Join(words, " "))
	}
	if cmd == cmdSSH {
		return runSSH(c, words[1:])
	}
	if cmd == cmdHelp {
		// help ignores flags: "help new --json" is help for new.
		var args []string
		for _, w := range words[1:] {
			if !strings.HasPrefix(w, "-") {
				args = append(args, w)
			}
		}
		return cmdHelp.flags(nil)(c, args)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	run := cmd.flags(fs)
	err := fs.Parse(reorder(fs, words[1:]))
	if errors.Is(err, flag.ErrHelp) {
		return helpFor(c, cmd)
	}
	if err != nil {
		return c.fail("flag parsing error: " + err.Error())
	}
	if f := fs.Lookup("json"); f != nil {
		c.json = f.Value.String() == "true"
	}
	args := fs.Args()
	if cmd.args == 0 && len(args) > 0 {
		return c.failf("%q command has no subcommands and does not take positional arguments", name)
	}
	if cmd.args > 0 && len(args) > cmd.args {
		return c.failf("too many arguments; usage: %s", cmd.usage)
	}
	return run(c, args)
}

// wantsJSON reports whether --json is among the flags, before any "--".
func wantsJSON(words []string) bool {
	for _, w := range words {
		switch w {
		case "--":
			return false
		case "-json", "--json", "-json=true", "--json=true", "-json=1", "--json=1":
			return true
		}
	}
	return false
}

// reorder moves flags (and their values) in front of the positional
// arguments, as exe.dev does before parsing with Go's flag package. "--"
// ends the flags.
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(append(flags, "--"), pos...)
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// listFlag is a repeatable flag; with comma set, values are also split on
// commas.
type listFlag struct {
	vals  []string
	comma bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }
func (l *listFlag) Set(v string) error {
	if !l.comma {
		l.vals = append(l.vals, v)
		return nil
	}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			l.vals = append(l.vals, p)
		}
	}
	return nil
}

// --- help ---

var cmdHelp = &command{
	name:    "help",
	summary: "Show help for commands",
	usage:   "help [command]",
	args:    -1,
	flags: func(fs *flag.FlagSet) func(*cmdCtx, []string) int {
		return func(c *cmdCtx, args []string) int {
			if len(args) == 0 {
				return helpAll(c)
			}
			cmd, ok := commands[args[0]]
			if !ok {
				return c.failf("No help available for unrecognized command: %s", strings.Join(args, " "))
			}
			return helpFor(c, cmd)
		}
	},
}

func helpAll(c *cmdCtx) int {
	var b strings.Builder
	b.WriteString("EXE.DEV commands (local emulator):\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(tw, "  %s\t%s\n", n, commands[n].summary)
	}
	tw.Flush()
	b.WriteString("\nRun \"help <command>\" or \"<command> --help\" for details.\n")
	io.WriteString(c.stdout, b.String())
	return 0
}

func helpFor(c *cmdCtx, cmd *command) int {
	var b strings.Builder
	fmt.Fprintf(&b, "\nCommand: %s\n\n%s\n\nUsage: %s\n", cmd.name, cmd.summary, cmd.usage)
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	if cmd != cmdSSH {
		cmd.flags(fs)
	} else {
		fs.String("l", "", "login name on the VM (ignored: the VM's login user is used)")
	}
	width := 0
	fs.VisitAll(func(f *flag.Flag) { width = max(width, len(f.Name)) })
	if width > 0 {
		b.WriteString("\nOptions:\n")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(&b, "  --%-*s %s\n", width, f.Name, f.Usage)
		})
	}
	if len(cmd.examples) > 0 {
		b.WriteString("\nExamples:\n")
		for _, e := range cmd.examples {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	io.WriteString(c.stdout, b.String())
	return 0
}

// --- whoami ---

const emulatorEmail = "moat@emulator.local"

var cmdWhoami = &command{
	name:    "whoami",
	summary: "Show your account and SSH keys",
	usage:   "whoami [--json]",
	flags: func(fs *flag.FlagSet) func(*cmdCtx, []string) int {
		jsonOut := fs.Bool("json", false, "output in JSON format")
		return func(c *cmdCtx, _ []string) int {
			pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c.s.clientPub)))
			if *jsonOut {
				type key struct {
					Name        string `json:"name"`
					PublicKey   string `json:"public_key"`
					Fingerprint string `json:"fingerprint"`
					Current     bool   `json:"current"`
				}
				return c.writeJSON(struct {
					Email   string `json:"email"`
					SSHKeys []key  `json:"ssh_keys"`
				}{emulatorEmail, []key{{"key-1", pub, fingerprint(c.s.clientPub), true}}})
			}
			c.printf("Email Address: %s\nSSH Keys:\n  Public Key: %s (key-1) ← current\n", emulatorEmail, pub)
			return 0
		}
	},
}

// --- new ---

const defaultImage = "boldsoftware/exeuntu"

var cmdNew = &command{
	name:    "new",
	summary: "Create a new VM",
	usage:   "new [--name=NAME] [--image=IMAGE] [--tag=TAG]... [--env=KEY=VALUE]... [--json]",
	examples: []string{
		"new                                # just give me a computer",
		"new --name=b --image=ubuntu:22.04  # custom image and name",
		"new --tag=ci --env=FOO=bar --json  # tagged, with an environment variable",
	},
	flags: func(fs *flag.FlagSet) func(*cmdCtx, []string) int {
		name := fs.String("name", "", "VM name (auto-generated if not specified)")
		image := fs.String("image", "", "container image (default "+defaultImage+")")
		command := fs.String("command", "auto", "container command: auto, none, or a custom command")
		cpu := fs.Int("cpu", 2, "number of CPUs")
		memory := fs.String("memory", "", "memory size, e.g. 4, 4GB, 8G")
		disk := fs.String("disk", "", "disk size, e.g. 20, 20GB, 50G")
		env := &listFlag{}
		fs.Var(env, "env", "environment variable KEY=VALUE (repeatable)")
		tags := &listFlag{comma: true}
		fs.Var(tags, "tag", "tag for the VM (repeatable or comma-separated)")
		integrations := &listFlag{comma: true}
		fs.Var(integrations, "integration", "integration to attach (repeatable or comma-separated)")
		comment := fs.String("comment", "", "comment on the VM (at most 200 bytes)")
		fs.Bool("no-email", false, "do not send the creation e-mail")
		fs.Bool("json", false, "output in JSON format")
		setup := fs.String("setup-script", "", "script run at first boot (at most 10 KiB; \\n escapes; /dev/stdin reads stdin)")
		prompt := fs.String("prompt", "", "initial prompt to send to Shelley after VM creation (requires exeuntu image)")
		fs.String("pool", "", "team pool")
		fs.Bool("sandbox", false, "reserved-capacity sandbox VM")
		fs.String("registry-auth", "", "USER:PASS credentials for a private registry")
		return func(c *cmdCtx, _ []string) int {
			s := c.s
			spec := vmSpec{image: *image, command: *command, cpu: *cpu, comment: *comment}
			if spec.image == "" {
				spec.image = defaultImage
			}
			if code, ok := parseResources(c, &spec, *cpu, *memory, *disk); !ok {
				return code
			}
			for _, kv := range env.vals {
				k, _, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return c.failf("invalid environment variable format %q: must be KEY=VALUE", kv)
				}
				spec.env = append(spec.env, kv)
			}
			for _, t := range tags.vals {
				if !tagRE.MatchString(t) {
					return c.failf("invalid tag %q: tags must match [a-z][a-z0-9_-]*", t)
				}
			}
			spec.tags = tags.vals
			if len(*comment) > 200 {
				return c.fail("--comment must be at most 200 bytes")
			}
			if *setup != "" {
				script := *setup
				if script == "/dev/stdin" {
					b, _ := io.ReadAll(io.LimitReader(c.stdin, 10<<10+1))
					script = string(b)
				} else {
					script = strings.ReplaceAll(script, `\n`, "\n")
				}
				if len(script) > 10<<10 {
					return c.fail("--setup-script must be at most 10 KiB")
				}
				spec.setupScript = script
			}
			if *prompt != "" && spec.image != defaultImage {
				return c.fail("--prompt requires an image with Shelley (the default exeuntu image)")
			}

			s.createMu.Lock()
			defer s.createMu.Unlock()
			if *name != "" {
				if msg := s.checkNewName(*name, c.user); msg != "" {
					return c.fail(msg)
				}
				spec.name = *name
			}
			if s.opts.quota > 0 && len(s.VMs()) >= s.opts.quota {
				return c.fail(msgQuota)
			}
			if spec.name == "" {
				spec.name = randomName(func(n string) bool { return s.checkNewName(n, c.user) == "" })
			}
			if !c.json {
				c.printf("Creating %s using image %s...\n", spec.name, displayImage(spec.image))
			}
			for _, m := range s.opts.missingImages {
				if m == spec.image {
					return c.failf("image %q not found or not accessible", spec.image)
				}
			}
			start := time.Now()
			v, err := s.createVM(spec, "")
			if err != nil {
				return c.internalError("new", err)
			}
			if d := s.opts.newDelay; d > 0 {
				// The VM exists; the answer is slow (a client that gives up
				// now must still delete it).
				time.Sleep(d)
			}
			return c.reportNew(v, start)
		}
	},
}

// parseResources reads --cpu, --memory and --disk into spec.
func parseResources(c *cmdCtx, spec *vmSpec, cpu int, memory, disk string) (int, bool) {
	if cpu < 1 || cpu > 64 {
		return c.failf("invalid --cpu value: %d", cpu), false
	}
	spec.cpu = cpu
	spec.mem = 4 << 30
	if memory != "" {
		n, err := parseSize(memory)
		if err != nil {
			return c.failf("invalid --memory value: %v", err), false
		}
		spec.mem = n
	}
	spec.disk = int64(min(c.s.opts.diskCeiling, 20)) << 30
	if disk != "" {
		n, err := parseSize(disk)
		if err != nil {
			return c.failf("invalid --disk value: %v", err), false
		}
		if n > int64(c.s.opts.diskCeiling)<<30 {
			return c.fail(msgDiskCeiling(c.s.opts.diskCeiling)), false
		}
		spec.disk = n
	}
	return 0, true
}

// checkNewName returns why name cannot be used for a new VM, or "".
func (s *Server) checkNewName(name, user string) string {
	if name == user {
		return msgNameIsUser(name)
	}
	if !validName(name) {
		return msgInvalidName
	}
	if reservedNames[name] {
		return msgNotAvailable(name)
	}
	for _, t := range s.opts.taken {
		if t == name {
			return msgNotAvailable(name)
		}
	}
	if s.lookup(name) != nil {
		return msgNotAvailable(name)
	}
	return ""
}

// newJSON is the current `new --json` shape (reference §1.3).
type newJSON struct {
	VMName     string   `json:"vm_name"`
	Tags       []string `json:"tags,omitempty"`
	SSHCommand string   `json:"ssh_command"`
	SSHDest    string   `json:"ssh_dest"`
	SSHHost    string   `json:"ssh_host"`
	SSHUser    string   `json:"ssh_user,omitempty"`
	SSHPort    int      `json:"ssh_port"`
	HTTPSURL   string   `json:"https_url"`
	ProxyPort  int      `json:"proxy_port"`
	VSCodeURL  string   `json:"vscode_url"`
	XtermURL   string   `json:"xterm_url"`
}

// oldNewJSON is the older box_name shape.
type oldNewJSON struct {
	BoxName    string `json:"box_name"`
	SSHCommand string `json:"ssh_command"`
	SSHServer  string `json:"ssh_server"`
	SSHPort    int    `json:"ssh_port"`
	SSHUser    string `json:"ssh_user"`
	HTTPSURL   string `json:"https_url"`
	ProxyPort  int    `json:"proxy_port"`
}

func (c *cmdCtx) reportNew(v *vm, start time.Time) int {
	a := v.access()
	if c.json {
		if c.s.opts.oldJSON {
			return c.writeJSON(oldNewJSON{
				BoxName:    v.name,
				SSHCommand: sshCommand(v.name+"@"+a.host, a.port),
				SSHServer:  a.host,
				SSHPort:    a.port,
				SSHUser:    v.name,
				HTTPSURL:   a.httpsURL,
				ProxyPort:  8000,
			})
		}
		return c.writeJSON(newJSON{
			VMName:     v.name,
			Tags:       v.tagList(),
			SSHCommand: sshCommand(a.dest, a.port),
			SSHDest:    a.dest,
			SSHHost:    a.host,
			SSHUser:    a.user,
			SSHPort:    a.port,
			HTTPSURL:   a.httpsURL,
			ProxyPort:  8000,
			VSCodeURL:  "vscode://vscode-remote/ssh-remote+" + a.dest + "/home/exedev?windowId=_blank",
			XtermURL:   "https://" + v.name + ".xterm.exe.localhost",
		})
	}
	c.printf("Ready in %.1fs!\n\nApp (HTTPS proxy → :8000)\n%s\n\nSSH\n%s\n", time.Since(start).Seconds(), a.httpsURL, sshCommand(a.dest, a.port))
	return 0
}

func sshCommand(dest string, port int) string {
	if port == 22 {
		return "ssh " + dest
	}
	return "ssh -p " + strconv.Itoa(port) + " " + dest
}

// internalError reports err the way exe.dev reports internal errors, and
// logs it under the trace ID it shows.
func (c *cmdCtx) internalError(cmd string, err error) int {
	var b [6]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	c.s.log.Error("exedevtest: internal error", "command", cmd, "trace", id, "err", err)
	return c.failf("%q: internal error, trace ID: %s", cmd, id)
}

// --- ls ---

type lsJSON struct {
	VMName        string   `json:"vm_name"`
	Status        string   `json:"status"`
	SSHDest       string   `json:"ssh_dest"`
	SSHHost       string   `json:"ssh_host"`
	SSHUser       string   `json:"ssh_user,omitempty"`
	SSHPort       int      `json:"ssh_port"`
	SSHCommand    string   `json:"ssh_command"`
	HTTPSURL      string   `json:"https_url"`
	ProxyPort     int      `json:"proxy_port"`
	Region        string   `json:"region"`
	RegionDisplay string   `json:"region_display"`
	Image         string   `json:"image"`
	Tags          []string `json:"tags,omitempty"`
	CPUs          int      `json:"allocated_cpus"`
	Memory        int64    `json:"memory_capacity_bytes"`
	Disk          int64    `json:"disk_capacity_bytes"`
	CreatedAt     string   `json:"created_at"`
}

var cmdLs = &command{
	name:    "ls",
	summary: "List your VMs",
	usage:   "ls [-l] [--json] [name|pattern]",
	args:    1,
	flags: func(fs *flag.FlagSet) func(*cmdCtx, []string) int {
		long := fs.Bool("l", false, "show details")
		fs.Bool("json", false, "output in JSON format")
		return func(c *cmdCtx, args []string) int {
			var vms []*vm
			for _, n := range c.s.VMs() {
				if len(args) == 1 {
					if ok, _ := path.Match(args[0], n); !ok && args[0] != n {
						continue
					}
				}
				if v := c.s.lookup(n); v != nil {
					vms = append(vms, v)
				}
			}
			if c.json {
				out := struct {
					VMs []lsJSON `json:"vms"`
				}{VMs: []lsJSON{}}
				for _, v := range vms {
					a := v.access()
					out.VMs = append(out.VMs, lsJSON{
						VMName: v.name, Status: "running",
						SSHDest: a.dest, SSHHost: a.host, SSHUser: a.user, SSHPort: a.port,
						SSHCommand: sshCommand(a.dest, a.port),
						HTTPSURL:   a.httpsURL, ProxyPort: 8000,
						Region: "lcl", RegionDisplay: "Local emulator",
						Image: displayImage(v.image), Tags: v.tagList(),
						CPUs: v.cpu, Memory: v.mem, Disk: v.disk,
						CreatedAt: v.createdAt().UTC().Format(time.RFC3339),
					})
				}
				return c.writeJSON(out)
			}
			if len(vms) == 0 {
				c.printf("No VMs found\n")
				return 0
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			for _, v := range vms {
				a := v.access()
				if *long {
					fmt.Fprintf(tw, "%s\trunning\t%s\t%s\t%s\t%s\n", v.name, displayImage(v.image),
						sshCommand(a.dest, a.port), strings.Join(v.tagList(), ","), v.createdAt().UTC().Format(time.RFC3339))
				} else {
					fmt.Fprintf(tw, "%s\trunning\t%s\n", v.name, sshCommand(a.dest, a.port))
				}
			}
			tw.Flush()
			return 0
		}
	},
}

// --- rm ---

var cmdRm = &command{
	name:    "rm",
	summary: "Delete VMs",
	usage:   "rm <vmname>... [--json]",
	args:    -1,
	flags: func(fs *flag.FlagSet) func(*cmdCtx, []string) int {
		fs.Bool("json", false, "output in JSON format")
		return func(c *cmdCtx, args []string) int {
			if len(args) == 0 {
				return c.fail("usage: rm <vmname>...")
			}
			type failure struct {
				VMName string `json:"vm_name"`
				Error  string `json:"error"`
			}
			deleted := []string{}
			failed := []failure{}
			var errs []error
			for _, n := range args {
				v := c.s.remove(n)
				if v == nil {
					failed = append(failed, failure{n, msgNotFound(n)})
					continue
				}
				if !c.json {
					c.printf("Deleting %s...\n", n)
				}
				if err := v.destroy(); err != nil {
					errs = append(errs, err)
					c.s.log.Warn("exedevtest: rm: cleanup", "vm", n, "err", err)
				}
				deleted = append(deleted, n)
			}
			if len(deleted) == 0 {
				return c.fail(failed[0].Error)
			}
			code := 0
			if len(failed) > 0 {
				code = 1
			}
			switch {
			case c.json && c.s.opts.oldJSON:
				for _, n := range deleted {
					c.writeJSON(map[string]string{"vm_name": n, "status": "deleted"})
				}
				for _, f := range failed {
					c.fail(f.Error)
				}
			case c.json:
				c.writeJSON(struct {
					Deleted []string  `json:"deleted"`
					Failed  []failure `json:"failed"`
				}{deleted, failed})
			default:
				for _, f := range failed {
					c.fail(f.Error)
				}
				if len(deleted) == 1 {
					c.printf("1 VM deleted successfully\n")
				} else {
					c.printf("%d VMs deleted successfully\n", len(deleted))
				}
			}
			return code
		}
	},
}

// --- restart ---

var cmdRestart = &command{
	name:    "restart",
	summary: "Restart a VM (its processes are killed; its disk is kept)",
	usage:   "restart <vmname> [--json]",
	args:    1,
	flags: func(fs *flag.FlagSet) func(*cmdCtx, []string) int {
		fs.Bool("json", false, "output in JSON format")
		return func(c *cmdCtx, args []string) int {
			if len(args) != 1 {
				return c.fail("usage: restart <vmname>")
			}
			v := c.s.lookup(args[0])
			if v == nil {
				return c.fail(msgNotFound(args[0]))
			}
			c.s.createMu.Lock()
			err := v.restart()
			c.s.createMu.Unlock()
			if err != nil {
				return c.internalError("restart", err)
			}
			if c.json {
				return c.writeJSON(map[string]string{"vm_name": v.name, "status": "restarted"})
			}
			c.printf("Restarting %s...\nVM %q restarted\n", v.name, v.name)
			return 0
		}
	},
}

// --- tag ---

var cmdTag = &command{
	name:    "tag",
	summary: "Add or remove tags on a VM",
	usage:   "tag [-d] <vm> <tag>...",
	args:    -1,
	flags: func(fs *flag.FlagSet) func(*cmdCtx, []string) int {
		del := fs.Bool("d", false, "remove the tags instead of adding them")
		fs.Bool("json", false, "output in JSON format")
		return func(c *cmdCtx, args []string) int {
			if len(args) < 2 {
				return c.fail("usage: tag [-d] <vm> <tag>...")
			}
			v := c.s.lookup(args[0])
			if v == nil {
				return c.fail(msgNotFound(args[0]))
			}
			for _, t := range args[1:] {
				if !tagRE.MatchString(t) {
					return c.failf("invalid tag %q: tags must match [a-z][a-z0-9_-]*", t)
				}
			}
			tags := v.updateTags(args[1:], *del)
			if c.json {
				if tags == nil {
					tags = []string{}
				}
				return c.writeJSON(struct {
					VMName string   `json:"vm_name"`
					Tags   []string `json:"tags"`
				}{v.name, tags})
			}
			if len(tags) == 0 {
				c.printf("%s has no tags\n", v.name)
			} else {
				c.printf("%s tags: %s\n", v.name, strings.Join(tags, ", "))
			}
			return 0
		}
	},
}

// --- cp ---

var cmdCp = &command{
	name:    "cp",
	summary: "Copy a VM, with its disk",
	usage:   "cp <source-vm> [new-name] [--cpu=N] [--memory=S] [--disk=S] [--copy-tags[=false]] [--json]",
	args:    2,
	flags: func(fs *flag.FlagSet) func(*cmdCtx, []string) int {
		cpu := fs.Int("cpu", 0, "number of CPUs (default: the source's)")
		memory := fs.String("memory", "", "memory size (default: the source's)")
		disk := fs.String("disk", "", "disk size (default: the source's)")
		copyTags := fs.Bool("copy-tags", true, "copy the source's tags")
		fs.String("pool", "", "team pool")
		fs.Bool("json", false, "output in JSON format")
		return func(c *cmdCtx, args []string) int {
			s := c.s
			if len(args) == 0 {
				return c.fail("usage: cp <source-vm> [new-name]")
			}
			src := s.lookup(args[0])
			if src == nil {
				return c.failf("vm %q not found", args[0])
			}
			spec := src.specCopy(*copyTags)
			n := *cpu
			if n == 0 {
				n = src.cpu
			}
			if code, ok := parseResources(c, &spec, n, *memory, *disk); !ok {
				return code
			}
			if *memory == "" {
				spec.mem = src.mem
			}
			if *disk == "" {
				spec.disk = src.disk
			}
			s.createMu.Lock()
			defer s.createMu.Unlock()
			if len(args) == 2 {
				if msg := s.checkNewName(args[1], c.user); msg != "" {
					return c.fail(msg)
				}
				spec.name = args[1]
			}
			if s.opts.quota > 0 && len(s.VMs()) >= s.opts.quota {
				return c.fail(msgQuota)
			}
			if spec.name == "" {
				spec.name = randomName(func(n string) bool { return s.checkNewName(n, c.user) == "" })
			}
			if !c.json {
				c.printf("Copying %s to %s...\n", src.name, spec.name)
			}
			start := time.Now()
			v, err := s.createVM(spec, src.home)
			if err != nil {
				return c.internalError("cp", err)
			}
			return c.reportNew(v, start)
		}
	},
}

// --- ssh ---

var cmdSSH = &command{
	name:    "ssh",
	summary: "Run a command on a VM",
	usage:   "ssh [-l user] [user@]vmname [command...]",
	args:    -1,
}

// runSSH runs `ssh [-l user] [user@]vm [command...]`: the command's output
// goes to the session and its exit status is passed through.
func runSSH(c *cmdCtx, args []string) int {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch a := args[0]; {
		case a == "-l" || a == "--l":
			if len(args) < 2 {
				return c.fail("flag parsing error: flag needs an argument: -l")
			}
			args = args[2:]
		case strings.HasPrefix(a, "-l=") || strings.HasPrefix(a, "--l="):
			args = args[1:]
		case a == "-h" || a == "--help" || a == "-help":
			return helpFor(c, cmdSSH)
		case a == "--":
			args = args[1:]
			goto done
		default:
			return c.failf("flag parsing error: flag provided but not defined: -%s", strings.TrimLeft(a, "-"))
		}
	}
done:
	if len(args) == 0 {
		return c.fail("usage: " + cmdSSH.usage)
	}
	name := args[0]
	if i := strings.LastIndex(name, "@"); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSuffix(name, ".exe.xyz")
	v := c.s.lookup(name)
	if v == nil || c.ss == nil {
		return c.fail(msgNotFound(name))
	}
	var abort <-chan struct{} = c.ss.abort
	if !v.waitReady(abort) {
		return 1
	}
	argv := []string{"/bin/sh"}
	if len(args) > 1 {
		argv = append(argv, "-c", strings.Join(args[1:], " "))
	}
	e, err := v.run(runSpec{
		argv:    argv,
		env:     v.baseEnv(),
		stdin:   c.stdin,
		stdout:  c.stdout,
		stderr:  c.stderr,
		signals: c.ss.signals,
		abort:   abort,
	})
	if err != nil {
		return c.internalError("ssh", err)
	}
	if e.signal != "" {
		return 128 + signalNumber(e.signal)
	}
	return e.code
}
