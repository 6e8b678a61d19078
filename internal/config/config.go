// Package config reads a repository's moat settings: .moat/config.toml and
// the credentials in .moat/.env.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/moatdev/moat/internal/dotenv"
	"github.com/moatdev/moat/internal/registry"
	"github.com/moatdev/moat/sandbox/exedev"
)

// File is the path of the config file, relative to the repository root.
const File = ".moat/config.toml"

// EnvFile is the path of the credentials file, relative to the repository root.
const EnvFile = ".moat/.env"

// Config is .moat/config.toml. Zero fields mean "not set": the CLI's
// defaults apply, and flags win over everything.
type Config struct {
	Sandbox           string   `toml:"sandbox"`            // a spec of a kind in registry.Sandboxes
	Network           string   `toml:"network"`            // the local sandbox's: isolated, none, host
	Agent             string   `toml:"agent"`              // a name in registry.Agents
	Model             string   `toml:"model"`              // for the agents that take a model
	AgentCmd          string   `toml:"agent_cmd"`          // for an agent that runs a command
	PromptFile        string   `toml:"prompt_file"`        // relative to the repository root
	MaxIterations     int      `toml:"max_iterations"`     // 0: not set
	IdleTimeout       Duration `toml:"idle_timeout"`       // e.g. "10m"
	CompletionTimeout Duration `toml:"completion_timeout"` // e.g. "60s"
	ExitGrace         Duration `toml:"exit_grace"`         // e.g. "5s"
	Branch            string   `toml:"branch"`             // "": merge into the checked-out branch
	MaxFileSize       Size     `toml:"max_file_size"`      // e.g. "100MiB"
	MaxSyncSize       Size     `toml:"max_sync_size"`      // e.g. "1GiB"
	MaxFiles          int64    `toml:"max_files"`          // 0: not set
	Copy              []string `toml:"copy"`               // CopyToWorktree paths
	Env               []string `toml:"env"`                // keys passed from the process environment
	SecretEnv         []string `toml:"secret_env"`         // the same, and their values are redacted
	Hooks             Hooks    `toml:"hooks"`
	ExeDev            ExeDev   `toml:"exedev"`
}

// Hooks are shell commands run at fixed points of a run.
type Hooks struct {
	OnWorktreeReady []string `toml:"on_worktree_ready"` // on the host, in the worktree
	OnSandboxReady  []string `toml:"on_sandbox_ready"`  // in the sandbox, e.g. "npm ci"
}

// ExeDev holds the exe.dev settings. MOAT_EXEDEV_* variables win over them.
type ExeDev struct {
	Lobby          string   `toml:"lobby"`            // host[:port]; default exe.dev
	IdentityFile   string   `toml:"identity_file"`    // private key; default ~/.ssh/id_exe, ssh_config, agent
	KnownHostsFile string   `toml:"known_hosts_file"` // default ~/.ssh/known_hosts
	Image          string   `toml:"image"`
	CPU            int      `toml:"cpu"`
	Memory         string   `toml:"memory"` // e.g. "4GB"
	Disk           string   `toml:"disk"`   // e.g. "20GB"
	Tags           []string `toml:"tags"`
	ReadyTimeout   Duration `toml:"ready_timeout"` // how long a new VM may take to accept SSH; default 90s
}

// Duration is a time.Duration written as a Go duration string ("90s", "10m").
type Duration struct{ time.Duration }

// durationHint is what a bad duration is told to look like.
const durationHint = `a duration such as "10m" or "90s"`

// UnmarshalText parses a Go duration string such as "90s" or "1h30m".
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("%q: want %s", text, durationHint)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as UnmarshalText reads it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Size is a number of bytes written as "100MiB", "1GiB", "500KB" or a
// plain number of bytes.
type Size struct {
	Bytes int64
	text  string // as written
}

// sizeHint is what a bad size is told to look like.
const sizeHint = `a size such as "100MiB" or "1GiB"`

// UnmarshalText parses a size as ParseSize does.
func (z *Size) UnmarshalText(text []byte) error {
	v, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	z.Bytes, z.text = v, string(text)
	return nil
}

// String is the size as written, or in bytes.
func (z Size) String() string {
	if z.text != "" {
		return z.text
	}
	return strconv.FormatInt(z.Bytes, 10)
}

// MarshalText writes the size as String does.
func (z Size) MarshalText() ([]byte, error) { return []byte(z.String()), nil }

// sizeUnits are the suffixes ParseSize takes: KiB, MiB ... powers of 1024,
// as are K, M, G and T (git's own); KB, MB ... powers of 1000.
var sizeUnits = map[string]int64{
	"": 1, "B": 1,
	"K": 1 << 10, "KIB": 1 << 10, "KB": 1e3,
	"M": 1 << 20, "MIB": 1 << 20, "MB": 1e6,
	"G": 1 << 30, "GIB": 1 << 30, "GB": 1e9,
	"T": 1 << 40, "TIB": 1 << 40, "TB": 1e12,
}

// ParseSize reads a positive size: a whole number of bytes, optionally
// followed by a unit (KiB, MiB, GiB, TiB or K, M, G, T: powers of 1024; KB,
// MB, GB, TB: powers of 1000; any case, a space allowed).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	mul, ok := sizeUnits[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || n <= 0 || n > math.MaxInt64/mul {
		return 0, fmt.Errorf("%q: want %s", s, sizeHint)
	}
	return n * mul, nil
}

// Error is a problem in .moat/config.toml or .moat/.env. Its message never
// contains a value from .moat/.env.
type Error struct {
	File string // relative to the repository root: File or EnvFile
	Line int    // from 1; 0 when unknown
	Key  string // the setting, e.g. "exedev.cpu"; "" when none
	Msg  string // what is wrong and what to write instead
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads <repoRoot>/.moat/config.toml. A missing file is not an error:
// found is false and the zero Config is returned. Unknown keys, wrong types
// and bad values are errors that name the file, the line and the fix; they
// are *Error values, except when the file cannot be read.
func Load(repoRoot string) (cfg Config, found bool, err error) {
	cfg, _, found, err = LoadData(repoRoot)
	return cfg, found, err
}

// Parse reads the contents of a config file, as Load does.
func Parse(data []byte) (Config, error) {
	text := string(bytes.TrimPrefix(data, []byte("\uFEFF")))
	var raw map[string]any
	md, err := toml.Decode(text, &raw)
	if err != nil {
		return Config{}, tomlError(text, err)
	}
	for _, k := range md.Keys() {
		if err := checkKey(text, raw, k); err != nil {
			return Config{}, err
		}
	}
	var cfg Config
	md, err = toml.Decode(text, &cfg)
	if err != nil { // checkKey lets nothing through that fails here
		return Config{}, tomlError(text, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		return Config{}, unknownKey(text, u[0])
	}
	if err := cfg.validate(text); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// tomlError turns an error of the toml package into an *Error.
func tomlError(text string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			msg = fmt.Sprintf("%s (after key %q)", msg, pe.LastKey)
		}
		name, value := keyAtLine(text, pe.Position.Line)
		if sk, ok := lookupKey(name); ok && value != "" && value[0] != '"' && value[0] != '\'' {
			switch sk.kind {
			case kDuration:
				msg += fmt.Sprintf(`; write durations in quotes, such as %s = "10m"`, name)
			case kSize:
				msg += fmt.Sprintf(`; write sizes in quotes, such as %s = "100MiB"`, name)
			case kString:
				msg += fmt.Sprintf("; put the value of %s in quotes", name)
			}
		}
		return &Error{File: File, Line: pe.Position.Line, Key: pe.LastKey, Msg: msg}
	}
	return &Error{File: File, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

// keyAtLine returns the full name of the key set on a line (1-based) of
// text and the text after its "=", or "", "" when the line sets no key.
// Like findKey it reads only simple layouts.
func keyAtLine(text string, line int) (name, value string) {
	table := ""
	for i, l := range strings.Split(text, "\n") {
		s := strings.TrimSpace(l)
		if strings.HasPrefix(s, "[") {
			table = tableName(s)
		}
		if i+1 < line {
			continue
		}
		before, after, ok := strings.Cut(s, "=")
		if !ok || strings.HasPrefix(s, "#") || strings.HasPrefix(s, "[") {
			return "", ""
		}
		name = strings.ReplaceAll(strings.Join(strings.Fields(before), ""), `"`, "")
		if table != "" {
			name = table + "." + name
		}
		return name, strings.TrimSpace(after)
	}
	return "", ""
}

// tableName returns the name in a [table] or [[table]] header line.
func tableName(s string) string {
	h := strings.TrimLeft(s, "[")
	if j := strings.IndexByte(h, ']'); j >= 0 {
		h = h[:j]
	}
	return strings.ReplaceAll(strings.Join(strings.Fields(h), ""), `"`, "")
}

// kind is the type of a setting.
type kind int

const (
	kString kind = iota
	kInt
	kDuration
	kSize
	kStrings
	kTable
)

// want says what a setting of each kind looks like.
var want = [...]string{
	kString:   `a string in quotes, such as "text"`,
	kInt:      `a whole number, such as 4`,
	kDuration: durationHint,
	kSize:     sizeHint,
	kStrings:  `an array of strings, such as ["a", "b"]`,
	kTable:    `a table`,
}

// key is one setting of the file.
type key struct {
	name string // full dotted name, e.g. "exedev.cpu"
	kind kind
}

// schema lists every key of the file, in the order of Template; tables
// come before their keys.
var schema = []key{
	{"sandbox", kString},
	{"network", kString},
	{"agent", kString},
	{"model", kString},
	{"agent_cmd", kString},
	{"prompt_file", kString},
	{"max_iterations", kInt},
	{"idle_timeout", kDuration},
	{"completion_timeout", kDuration},
	{"exit_grace", kDuration},
	{"branch", kString},
	{"max_file_size", kSize},
	{"max_sync_size", kSize},
	{"max_files", kInt},
	{"copy", kStrings},
	{"env", kStrings},
	{"secret_env", kStrings},
	{"hooks", kTable},
	{"hooks.on_worktree_ready", kStrings},
	{"hooks.on_sandbox_ready", kStrings},
	{"exedev", kTable},
	{"exedev.lobby", kString},
	{"exedev.identity_file", kString},
	{"exedev.known_hosts_file", kString},
	{"exedev.image", kString},
	{"exedev.cpu", kInt},
	{"exedev.memory", kString},
	{"exedev.disk", kString},
	{"exedev.tags", kStrings},
	{"exedev.ready_timeout", kDuration},
}

// Keys returns the full names of every setting the file may hold, tables
// included ("hooks", "exedev.cpu", ...), in the order Template writes them.
func Keys() []string {
	names := make([]string, len(schema))
	for i, k := range schema {
		names[i] = k.name
	}
	return names
}

func lookupKey(name string) (key, bool) {
	for _, k := range schema {
		if k.name == name {
			return k, true
		}
	}
	return key{}, false
}

// checkKey checks that k is a known key holding a value of its type.
func checkKey(text string, raw map[string]any, k toml.Key) error {
	// A known key that is not a table, used as one ("sandbox.x = 1").
	for i := 1; i < len(k); i++ {
		if sk, ok := lookupKey(k[:i].String()); ok && sk.kind != kTable {
			k = k[:i]
			break
		}
	}
	name := k.String()
	sk, ok := lookupKey(name)
	if !ok {
		return unknownKey(text, k)
	}
	v, ok := valueAt(raw, k)
	if !ok {
		return nil
	}
	line := keyLine(text, k)
	bad := func(extra string) error {
		msg := fmt.Sprintf("%s: want %s, not %s%s", show(name, v), want[sk.kind], describe(v), extra)
		return &Error{File: File, Line: line, Key: name, Msg: msg}
	}
	switch sk.kind {
	case kString:
		if _, ok := v.(string); !ok {
			return bad("")
		}
	case kInt:
		if _, ok := v.(int64); !ok {
			return bad("")
		}
	case kDuration:
		s, ok := v.(string)
		if !ok {
			return bad("")
		}
		if _, err := time.ParseDuration(s); err != nil {
			return &Error{File: File, Line: line, Key: name, Msg: fmt.Sprintf("%s: want %s", show(name, v), durationHint)}
		}
	case kSize:
		s, ok := v.(string)
		if !ok {
			return bad("")
		}
		if _, err := ParseSize(s); err != nil {
			return &Error{File: File, Line: line, Key: name, Msg: fmt.Sprintf("%s: want %s", show(name, v), sizeHint)}
		}
	case kStrings:
		items, ok := v.([]any)
		if !ok {
			return bad("")
		}
		for i, item := range items {
			if _, ok := item.(string); !ok {
				return &Error{File: File, Line: line, Key: name,
					Msg: fmt.Sprintf("%s: want %s, but item %d is %s", name, want[kStrings], i+1, describe(item))}
			}
		}
	case kTable:
		if _, ok := v.(map[string]any); !ok {
			return &Error{File: File, Line: line, Key: name,
				Msg: fmt.Sprintf("%s: want a table, written [%s] with its keys on the lines below, not %s", show(name, v), name, describe(v))}
		}
	}
	return nil
}

// valueAt returns the value of k in the decoded file.
func valueAt(raw map[string]any, k toml.Key) (any, bool) {
	var v any = raw
	for _, piece := range k {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[piece]; !ok {
			return nil, false
		}
	}
	return v, true
}

// show writes a key with its value when the value is short and simple.
func show(name string, v any) string {
	switch v := v.(type) {
	case string:
		if len(v) <= 60 && !strings.ContainsAny(v, "\n\r") {
			return name + " = " + tomlString(v)
		}
	case int64:
		return fmt.Sprintf("%s = %d", name, v)
	case float64:
		return fmt.Sprintf("%s = %v", name, v)
	case bool:
		return fmt.Sprintf("%s = %v", name, v)
	}
	return name
}

// describe names the type of a decoded TOML value.
func describe(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "a whole number"
	case float64:
		return "a number with a fraction"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	}
	return "a date or time"
}

// unknownKey reports a key the schema does not have: the first one of its
// parts that is unknown, with the keys known at that level and the closest
// one when it is close.
func unknownKey(text string, k toml.Key) error {
	for i := 1; i < len(k); i++ {
		if _, ok := lookupKey(k[:i].String()); !ok {
			k = k[:i]
			break
		}
	}
	name := k.String()
	parent := k[:len(k)-1].String()
	var known []string
	for _, sk := range schema {
		if p, last, _ := cutLast(sk.name); p == parent {
			known = append(known, last)
		}
	}
	msg := fmt.Sprintf("unknown key %q", name)
	if s := suggest(name); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	if parent == "" {
		msg += fmt.Sprintf(" (known: %s)", strings.Join(known, ", "))
	} else {
		msg += fmt.Sprintf(" (known in [%s]: %s)", parent, strings.Join(known, ", "))
	}
	return &Error{File: File, Line: keyLine(text, k), Key: name, Msg: msg}
}

// cutLast splits "a.b.c" into "a.b" and "c".
func cutLast(name string) (parent, last string, ok bool) {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:], true
	}
	return "", name, false
}

// suggest returns the known key closest to name, or "" when none is close.
func suggest(name string) string {
	_, last, _ := cutLast(name)
	norm := strings.ToLower(strings.ReplaceAll(name, "-", "_"))
	best, bestDist := "", 3
	for _, sk := range schema {
		d := editDistance(norm, sk.name)
		if _, l, _ := cutLast(sk.name); l == last || l == strings.ToLower(strings.ReplaceAll(last, "-", "_")) {
			d = min(d, 1) // the right key in the wrong table
		}
		if limit := max(1, len(name)/4); d <= limit && d < bestDist {
			best, bestDist = sk.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// keyLine finds the line where key k (or, failing that, the nearest of its
// parents) is set: "name = ..." in its table, or the table's [header]. It
// reads the simple layouts people write (and Template writes); 0 means not
// found.
func keyLine(text string, k toml.Key) int {
	for n := len(k); n > 0; n-- {
		if line := findKey(text, strings.Join(k[:n], ".")); line > 0 {
			return line
		}
	}
	return 0
}

func findKey(text, name string) int {
	table := ""
	inString := "" // the delimiter of the multi-line string being skipped
	for i, line := range strings.Split(text, "\n") {
		s := strings.TrimSpace(line)
		if inString != "" {
			if strings.Count(s, inString)%2 == 1 {
				inString = ""
			}
			continue
		}
		for _, delim := range []string{`"""`, `'''`} {
			if strings.Count(s, delim)%2 == 1 {
				inString = delim
			}
		}
		if strings.HasPrefix(s, "[") {
			table = tableName(s)
			if table == name || strings.HasPrefix(table, name+".") {
				return i + 1
			}
			continue
		}
		before, _, ok := strings.Cut(s, "=")
		if !ok || strings.HasPrefix(s, "#") {
			continue
		}
		full := strings.Join(strings.Fields(before), "")
		full = strings.ReplaceAll(full, `"`, "")
		if table != "" {
			full = table + "." + full
		}
		if full == name || strings.HasPrefix(full, name+".") {
			return i + 1
		}
	}
	return 0
}

// validate checks the values once the types are right.
func (c *Config) validate(text string) error {
	fail := func(name, format string, args ...any) error {
		return &Error{File: File, Line: keyLine(text, strings.Split(name, ".")), Key: name, Msg: fmt.Sprintf(format, args...)}
	}
	if c.Sandbox != "" {
		if err := CheckSandbox(c.Sandbox); err != nil {
			return fail("sandbox", "sandbox = %s: %v", tomlString(c.Sandbox), err)
		}
	}
	if c.Network != "" {
		if err := CheckNetwork(c.Network); err != nil {
			return fail("network", "network = %s: %v", tomlString(c.Network), err)
		}
	}
	if c.Agent != "" {
		k, ok := registry.Agents.Lookup(c.Agent)
		switch {
		case !ok:
			return fail("agent", "agent = %s: %v", tomlString(c.Agent), registry.Agents.Check(c.Agent))
		case k.TakesCommand && strings.TrimSpace(c.AgentCmd) == "":
			return fail("agent", `agent = %s needs agent_cmd, the program to run (it reads the prompt on stdin), such as agent_cmd = "sh agent.sh"`, tomlString(c.Agent))
		}
	}
	for _, n := range []struct {
		name string
		v    int64
		hint string
	}{
		{"max_iterations", int64(c.MaxIterations), "a whole number such as 5 (0 means the default)"},
		{"idle_timeout", int64(c.IdleTimeout.Duration), durationHint},
		{"completion_timeout", int64(c.CompletionTimeout.Duration), durationHint},
		{"exit_grace", int64(c.ExitGrace.Duration), durationHint},
		{"max_files", c.MaxFiles, "a number of files such as 100000 (0 means the default)"},
		{"exedev.cpu", int64(c.ExeDev.CPU), "a number of CPUs such as 2 (0 means exe.dev's default)"},
		{"exedev.ready_timeout", int64(c.ExeDev.ReadyTimeout.Duration), durationHint},
	} {
		if n.v < 0 {
			return fail(n.name, "%s is negative: want %s", n.name, n.hint)
		}
	}
	for _, list := range []struct {
		key   string
		names []string
	}{{"env", c.Env}, {"secret_env", c.SecretEnv}} {
		for i, name := range list.names {
			if strings.Contains(name, "=") {
				return fail(list.key, "%s item %d is KEY=VALUE: %s lists only names, taken from your environment; put values in %s", list.key, i+1, list.key, EnvFile)
			}
			if !dotenv.ValidKey(name) {
				return fail(list.key, "%s item %d = %s is not a variable name: use letters, digits and _, not starting with a digit, such as API_KEY", list.key, i+1, tomlString(name))
			}
		}
	}
	for _, h := range []struct {
		name  string
		hooks []string
	}{{"hooks.on_worktree_ready", c.Hooks.OnWorktreeReady}, {"hooks.on_sandbox_ready", c.Hooks.OnSandboxReady}} {
		for i, cmd := range h.hooks {
			if strings.TrimSpace(cmd) == "" {
				return fail(h.name, "%s item %d is empty: want a shell command such as \"npm ci\"", h.name, i+1)
			}
		}
	}
	return nil
}

// ProviderConfig is the exe.dev provider's configuration that the
// [exedev] table sets; the MOAT_EXEDEV_* variables are not applied
// (exedev.Config.WithEnv does).
func (e ExeDev) ProviderConfig() exedev.Config {
	return exedev.Config{
		Lobby:          e.Lobby,
		IdentityFile:   e.IdentityFile,
		KnownHostsFile: e.KnownHostsFile,
		Image:          e.Image,
		CPU:            e.CPU,
		Memory:         e.Memory,
		Disk:           e.Disk,
		Tags:           e.Tags,
		ReadyTimeout:   e.ReadyTimeout.Duration,
	}
}

// SandboxSettings are the settings the file holds for sandbox kinds, by
// kind name, as each kind's own configuration (sandbox.Env.Settings): its
// [exedev] table for the exedev kind.
func (c Config) SandboxSettings() map[string]any {
	return map[string]any{exedev.Kind.Name: c.ExeDev.ProviderConfig()}
}

// CheckSandbox checks a sandbox spec against the registered kinds
// (registry.Sandboxes): "exedev", "ssh://[user@]host[:port]", ...
func CheckSandbox(s string) error { return registry.Sandboxes.Check(s) }

// CheckNetwork checks a local sandbox network: isolated, none or host.
func CheckNetwork(s string) error {
	switch s {
	case "isolated", "none", "host":
		return nil
	}
	return errors.New(`want "isolated" (its own network, out through slirp4netns), "none" (no network) or "host" (this computer's network)`)
}

// tomlString writes s as a TOML basic string.
func tomlString(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Env is the resolved .moat/.env.
type Env struct {
	// Values are the declared keys with a value: from the file, or, when
	// the file's value is empty, from the process environment.
	Values map[string]string
	// Declared are the keys the file declares, in file order.
	Declared []string
	// Missing are declared keys with no value in the file or the process
	// environment.
	Missing []string
	// Found says whether the file exists.
	Found bool
	// Mode is the file's permission bits (when Found).
	Mode fs.FileMode
	// Loose says the file can be read or written by its group or by
	// others (Mode&0o077 != 0; never on Windows). It is not an error;
	// `moat doctor` warns and suggests chmod 600.
	Loose bool
}

// LoadEnv reads <repoRoot>/.moat/.env, only as a regular file inside the
// repository (a symbolic link out of it is refused); lookup is os.LookupEnv in
// production. Only the keys the file declares are returned. A missing file
// is an empty Env, not an error. Errors never contain a value.
func LoadEnv(repoRoot string, lookup func(string) (string, bool)) (Env, error) {
	// Only as a regular file inside the repository: a committed symbolic
	// link to a host file would hand its values to the agent.
	f, err := openRepoFile(repoRoot, EnvFile)
	if errors.Is(err, fs.ErrNotExist) {
		return Env{}, nil
	}
	if err != nil {
		return Env{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Env{}, fmt.Errorf("%s: %w", EnvFile, err)
	}
	entries, err := dotenv.Parse(f)
	if err != nil {
		var se *dotenv.SyntaxError
		if errors.As(err, &se) {
			return Env{}, &Error{File: EnvFile, Line: se.Line, Msg: se.Msg}
		}
		return Env{}, fmt.Errorf("%s: %w", EnvFile, err)
	}
	env := Env{Values: map[string]string{}, Found: true, Mode: st.Mode().Perm()}
	env.Loose = runtime.GOOS != "windows" && env.Mode&0o077 != 0
	for _, e := range entries {
		env.Declared = append(env.Declared, e.Key)
		v := e.Value
		if v == "" && lookup != nil {
			v, _ = lookup(e.Key)
		}
		if v == "" {
			env.Missing = append(env.Missing, e.Key)
			continue
		}
		env.Values[e.Key] = v
	}
	return env, nil
}
