package exedev

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// VM is what the lobby said about a VM it created.
type VM struct {
	Name     string   // vm_name
	SSHHost  string   // the host to dial
	SSHPort  int      // the port to dial
	SSHUser  string   // the SSH user routing needs; "" when any user works
	SSHDest  string   // ssh_dest as given
	HTTPSURL string   // https_url, when given
	Tags     []string // tags, when given
}

// parseLobbyOutput turns one lobby command's outcome into its JSON payload
// or a *LobbyError. Errors arrive as {"error":"…"} or plain text, on stdout
// (the server source) or stderr (as some users saw), so both are searched.
func parseLobbyOutput(command string, stdout, stderr []byte, exitCode int) (json.RawMessage, error) {
	out := bytes.TrimSpace(stdout)
	errOut := bytes.TrimSpace(stderr)
	if msg, ok := jsonError(out); ok {
		return nil, lobbyError(command, msg, exitCode)
	}
	if msg, ok := jsonError(errOut); ok {
		return nil, lobbyError(command, msg, exitCode)
	}
	if exitCode != 0 {
		msg := string(errOut)
		if msg == "" {
			msg = string(out)
		}
		if msg == "" {
			msg = fmt.Sprintf("exit status %d with no message", exitCode)
		}
		return nil, lobbyError(command, msg, exitCode)
	}
	if len(out) > 0 && !json.Valid(out) {
		if k := classify(string(out)); k == ErrUnregistered || k == ErrAccountLocked {
			return nil, lobbyError(command, string(out), exitCode)
		}
		return nil, &LobbyError{Command: command, ExitCode: exitCode,
			Message: fmt.Sprintf("expected JSON, got %q", truncate(string(out), 200))}
	}
	return json.RawMessage(out), nil
}

func lobbyError(command, msg string, exitCode int) *LobbyError {
	msg = strings.TrimSpace(strings.ReplaceAll(msg, "\r", ""))
	return &LobbyError{Command: command, Message: msg, ExitCode: exitCode, Kind: classify(msg)}
}

// jsonError extracts the message of a {"error": "…"} object.
func jsonError(b []byte) (string, bool) {
	if len(b) == 0 || b[0] != '{' {
		return "", false
	}
	var v struct {
		Error *string `json:"error"`
	}
	if json.Unmarshal(b, &v) != nil || v.Error == nil {
		return "", false
	}
	msg := *v.Error
	if strings.TrimSpace(msg) == "" {
		msg = "unspecified error"
	}
	return msg, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// parseVM reads the answer of `new --json` (or `cp --json`) in any of the
// shapes exe.dev has used: the current one (vm_name, ssh_host, ssh_user?,
// ssh_port, ssh_dest), the one before ssh_host existed, and the older
// box_name/ssh_server one. The server's routing fields are honoured; the
// host is built from the name only when the server gave none.
func parseVM(payload []byte) (VM, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return VM{}, fmt.Errorf("exe.dev new: unreadable answer %q: %w", truncate(string(payload), 200), err)
	}
	str := func(keys ...string) string {
		for _, k := range keys {
			var s string
			if v, ok := raw[k]; ok && json.Unmarshal(v, &s) == nil && strings.TrimSpace(s) != "" {
				return strings.TrimSpace(s)
			}
		}
		return ""
	}
	vm := VM{
		Name:     str("vm_name", "name", "box_name"),
		SSHHost:  str("ssh_host"),
		SSHUser:  str("ssh_user"),
		SSHDest:  str("ssh_dest"),
		HTTPSURL: str("https_url"),
	}
	if v, ok := raw["tags"]; ok {
		json.Unmarshal(v, &vm.Tags)
	}
	if vm.Name == "" {
		return VM{}, fmt.Errorf("exe.dev new: the answer names no VM: %q", truncate(string(payload), 200))
	}
	if v, ok := raw["ssh_port"]; ok {
		var n json.Number
		var s string
		switch {
		case json.Unmarshal(v, &n) == nil:
			p, err := strconv.Atoi(n.String())
			if err != nil {
				return VM{}, fmt.Errorf("exe.dev new: bad ssh_port %s", v)
			}
			vm.SSHPort = p
		case json.Unmarshal(v, &s) == nil:
			p, err := strconv.Atoi(s)
			if err != nil && s != "" {
				return VM{}, fmt.Errorf("exe.dev new: bad ssh_port %q", s)
			}
			vm.SSHPort = p
		}
	}
	if vm.SSHHost == "" && vm.SSHDest != "" {
		host := vm.SSHDest
		if i := strings.LastIndex(host, "@"); i >= 0 {
			if vm.SSHUser == "" {
				vm.SSHUser = host[:i]
			}
			host = host[i+1:]
		}
		if h, p, err := net.SplitHostPort(host); err == nil {
			host = h
			if vm.SSHPort == 0 {
				vm.SSHPort, _ = strconv.Atoi(p)
			}
		}
		vm.SSHHost = host
	}
	if vm.SSHHost == "" {
		vm.SSHHost = str("ssh_server")
	}
	if vm.SSHHost == "" {
		vm.SSHHost = vm.Name + ".exe.xyz"
	}
	if vm.SSHPort == 0 {
		vm.SSHPort = 22
	}
	if vm.SSHPort < 1 || vm.SSHPort > 65535 {
		return VM{}, fmt.Errorf("exe.dev new: ssh_port %d is out of range", vm.SSHPort)
	}
	if strings.ContainsFunc(vm.SSHHost, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' || r == '@' }) {
		return VM{}, fmt.Errorf("exe.dev new: ssh_host %q is not a host name", vm.SSHHost)
	}
	return vm, nil
}
