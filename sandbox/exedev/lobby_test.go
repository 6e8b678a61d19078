package exedev

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// Samples from reference/exedev.md §1.3 (live 2026-10-01 output, older shapes).
const (
	sampleCurrent       = `{"vm_name":"agro-us004-144434","tags":["agro-matrix"],"ssh_command":"ssh agro-us004-144434.exe.xyz","ssh_dest":"agro-us004-144434.exe.xyz","ssh_host":"agro-us004-144434.exe.xyz","ssh_port":22,"https_url":"https://agro-us004-144434.exe.xyz","proxy_port":8000,"shelley_url":"https://agro-us004-144434.shelley.exe.xyz","vscode_url":"vscode://vscode-remote/ssh-remote+agro-us004-144434.exe.xyz/home/exedev?windowId=_blank","xterm_url":"https://agro-us004-144434.xterm.exe.xyz"}`
	sampleLegacyRouting = `{"vm_name":"maple-dune","ssh_dest":"vm+maple-dune@vm.exe.xyz","ssh_host":"vm.exe.xyz","ssh_user":"vm+maple-dune","ssh_port":22}`
	sampleNoSSHHost     = `{"vm_name":"lynx-zebra","ssh_dest":"vm+lynx-zebra@vm.exe.xyz","ssh_port":2222,"https_url":"https://lynx-zebra.exe.xyz"}`
	sampleOld           = `{"box_name":"old-box","ssh_command":"ssh old-box@exe.dev","ssh_server":"exe.dev","ssh_port":22,"ssh_user":"old-box","https_url":"https://old-box.exe.dev","proxy_port":8000}`
	sampleNameOnly      = `{"vm_name":"bare-name"}`
)

func TestParseVM(t *testing.T) {
	for _, c := range []struct {
		in   string
		want VM
	}{
		{sampleCurrent, VM{Name: "agro-us004-144434", SSHHost: "agro-us004-144434.exe.xyz", SSHPort: 22, SSHDest: "agro-us004-144434.exe.xyz", HTTPSURL: "https://agro-us004-144434.exe.xyz", Tags: []string{"agro-matrix"}}},
		{sampleLegacyRouting, VM{Name: "maple-dune", SSHHost: "vm.exe.xyz", SSHUser: "vm+maple-dune", SSHPort: 22, SSHDest: "vm+maple-dune@vm.exe.xyz"}},
		{sampleNoSSHHost, VM{Name: "lynx-zebra", SSHHost: "vm.exe.xyz", SSHUser: "vm+lynx-zebra", SSHPort: 2222, SSHDest: "vm+lynx-zebra@vm.exe.xyz", HTTPSURL: "https://lynx-zebra.exe.xyz"}},
		{sampleOld, VM{Name: "old-box", SSHHost: "exe.dev", SSHUser: "old-box", SSHPort: 22, HTTPSURL: "https://old-box.exe.dev"}},
		{sampleNameOnly, VM{Name: "bare-name", SSHHost: "bare-name.exe.xyz", SSHPort: 22}},
		{`{"vm_name":"emu-vm","ssh_host":"127.0.0.1","ssh_port":40123,"ssh_dest":"127.0.0.1"}`, VM{Name: "emu-vm", SSHHost: "127.0.0.1", SSHPort: 40123, SSHDest: "127.0.0.1"}},
	} {
		got, err := parseVM([]byte(c.in))
		if err != nil {
			t.Errorf("parseVM(%s): %v", c.in, err)
			continue
		}
		if got.Name != c.want.Name || got.SSHHost != c.want.SSHHost || got.SSHPort != c.want.SSHPort ||
			got.SSHUser != c.want.SSHUser || got.SSHDest != c.want.SSHDest || got.HTTPSURL != c.want.HTTPSURL || !slices.Equal(got.Tags, c.want.Tags) {
			t.Errorf("parseVM(%s)\n got %+v\nwant %+v", c.in, got, c.want)
		}
	}
	for _, bad := range []string{``, `[]`, `"name"`, `{}`, `{"vm_name":""}`, `{"vm_name":"x","ssh_port":"abc"}`, `{"vm_name":"x","ssh_port":70000}`, `{"vm_name":"x","ssh_host":"a b"}`} {
		if vm, err := parseVM([]byte(bad)); err == nil {
			t.Errorf("parseVM(%q) = %+v, want an error", bad, vm)
		}
	}
}

func TestParseLobbyOutputErrors(t *testing.T) {
	for _, c := range []struct {
		name           string
		stdout, stderr string
		exit           int
		kind           error
		msg            string
	}{
		{"json error on stdout", `{"error":"VM name \"taken-vm\" is not available"}` + "\n", "", 1, ErrNameTaken, `VM name "taken-vm" is not available`},
		{"json error on stderr", "", `{"error": "You have reached the maximum number of boxes allowed on your plan."}`, 1, ErrQuota, "You have reached the maximum number of boxes allowed on your plan."},
		{"json error with exit 0", `{"error":"Invalid VM name. Must be 5-63 characters: start with a lowercase letter, then lowercase letters or digits, with optional single hyphen separators (e.g., a-vm-name)."}`, "", 0, ErrInvalidName, "Invalid VM name. Must be 5-63 characters"},
		{"registration", "Please complete registration by running: ssh exe.dev\r\n", "", 1, ErrUnregistered, "Please complete registration by running: ssh exe.dev"},
		{"registration exit 0", "Please complete registration by running: ssh exe.dev\r\n", "", 0, ErrUnregistered, "Please complete registration"},
		{"locked", "contact support@exe.dev (trace: abc123)\n", "", 1, ErrAccountLocked, "contact support@exe.dev (trace: abc123)"},
		{"disk", `{"error":"--disk cannot exceed 11 GiB — contact support@exe.dev if you need more"}`, "", 1, ErrQuota, "--disk cannot exceed 11 GiB"},
		{"image", "Creating x using image nope...\nimage \"nope\" not found or not accessible\n", "", 1, ErrNotFound, `image "nope" not found`},
		{"plain text stderr", "", "some other failure\n", 1, nil, "some other failure"},
		{"nothing", "", "", 1, nil, "exit status 1 with no message"},
		{"not json", "hello there", "", 0, nil, "expected JSON"},
	} {
		_, err := parseLobbyOutput("new", []byte(c.stdout), []byte(c.stderr), c.exit)
		var le *LobbyError
		if !errors.As(err, &le) {
			t.Errorf("%s: error %v is not a *LobbyError", c.name, err)
			continue
		}
		if c.kind != nil && !errors.Is(err, c.kind) {
			t.Errorf("%s: %v is not %v", c.name, err, c.kind)
		}
		if c.kind == nil && le.Kind != nil {
			t.Errorf("%s: classified as %v, want unclassified", c.name, le.Kind)
		}
		if !strings.Contains(le.Message, c.msg) {
			t.Errorf("%s: message %q does not keep the server's words %q", c.name, le.Message, c.msg)
		}
		if strings.ContainsAny(le.Message, "\r") {
			t.Errorf("%s: message keeps a CR", c.name)
		}
	}
	if out, err := parseLobbyOutput("ls", []byte(`{"vms":[]}`+"\n"), nil, 0); err != nil || string(out) != `{"vms":[]}` {
		t.Errorf("success: %q %v", out, err)
	}
}

func TestParseList(t *testing.T) {
	got, err := parseList([]byte(`{"vms":[{"vm_name":"b-vm","status":"running","ssh_host":"b-vm.exe.xyz","tags":["moat"],"created_at":"2026-11-25T10:00:00Z"},{"vm_name":"a-vm","status":"running","ssh_dest":"a-vm.exe.xyz","created_at":"2026-11-24T10:00:00Z"}]}`))
	if err != nil || len(got) != 2 || got[0].Name != "a-vm" || got[0].SSHHost != "a-vm.exe.xyz" || !got[1].HasTag("moat") || got[0].HasTag("moat") {
		t.Fatalf("parseList: %+v %v", got, err)
	}
	for _, empty := range []string{``, `{"vms":[]}`, `{"vms":null}`, `{}`} {
		if got, err := parseList([]byte(empty)); err != nil || len(got) != 0 {
			t.Errorf("parseList(%q) = %v, %v", empty, got, err)
		}
	}
}
