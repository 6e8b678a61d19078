package exedev

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// FuzzParseLobby feeds arbitrary lobby answers (stdout, stderr, exit
// status) to the parsers of `new --json`. They must never panic, and:
//
//   - a non-zero exit status is always an error, and so is output that is
//     not JSON;
//   - every error is a *LobbyError for the command, with the exit status,
//     a trimmed message without CR, a known kind or none, and a message that
//     is the server's own words (a string of its JSON, or a piece of its
//     output) or one of moat's few fixed phrases;
//   - an answer with exit status 0, JSON (or nothing) on stdout and no
//     "error" anywhere is accepted, and the payload is stdout trimmed;
//   - a VM parseVM accepts is usable: a name from the answer, a port in
//     1-65535, and a host name with no white space, control characters,
//     "/" or "@";
//   - parseList copes with any accepted payload.
//
// The seed corpus in testdata/fuzz/FuzzParseLobby holds every answer of the
// emulator's golden transcripts (exedevtest/testdata/golden) and edge
// cases; the live samples of lobby_test.go are added below. Run it longer
// with go test -run '^$' -fuzz '^FuzzParseLobby$' -fuzztime 2m
// ./sandbox/exedev (or scripts/fuzz.sh with MOAT_FUZZTIME).
func FuzzParseLobby(f *testing.F) {
	for _, s := range []string{sampleCurrent, sampleLegacyRouting, sampleNoSSHHost, sampleOld, sampleNameOnly} {
		f.Add([]byte(s+"\n"), []byte(nil), 0)
		f.Add([]byte(nil), []byte(s), 1)
	}
	f.Fuzz(func(t *testing.T, stdout, stderr []byte, exit int) {
		payload, err := parseLobbyOutput("new", stdout, stderr, exit)
		if err != nil {
			checkLobbyError(t, err, stdout, stderr, exit)
		} else {
			if exit != 0 {
				t.Fatalf("exit status %d accepted as success: %q", exit, payload)
			}
			if want := bytes.TrimSpace(stdout); !bytes.Equal(payload, want) {
				t.Fatalf("payload %q, want stdout trimmed %q", payload, want)
			}
			if len(payload) > 0 && !json.Valid(payload) {
				t.Fatalf("accepted a payload that is not JSON: %q", payload)
			}
		}
		out := bytes.TrimSpace(stdout)
		switch {
		case exit == 0 && len(out) > 0 && !json.Valid(out):
			if err == nil {
				t.Fatalf("stdout %q is not JSON, yet accepted", stdout)
			}
		case exit == 0 && !mentionsError(out) && !mentionsError(bytes.TrimSpace(stderr)):
			if err != nil {
				t.Fatalf("a clean answer (stdout %q, stderr %q) was refused: %v", stdout, stderr, err)
			}
		}
		if err != nil {
			return
		}
		parseList(payload) // must not panic; any JSON shape is possible
		vm, err := parseVM(payload)
		if err != nil {
			return
		}
		strs := jsonStrings(payload)
		switch {
		case vm.Name == "" || vm.Name != strings.TrimSpace(vm.Name) || !strs[vm.Name] && !trimmedIn(vm.Name, strs):
			t.Fatalf("accepted VM name %q that is not from the answer %q", vm.Name, payload)
		case vm.SSHPort < 1 || vm.SSHPort > 65535:
			t.Fatalf("accepted port %d from %q", vm.SSHPort, payload)
		case !hostName(vm.SSHHost):
			t.Fatalf("accepted %q as the host name to dial, from %q", vm.SSHHost, payload)
		}
	})
}

func checkLobbyError(t *testing.T, err error, stdout, stderr []byte, exit int) {
	t.Helper()
	var le *LobbyError
	if !errors.As(err, &le) {
		t.Fatalf("error %v is not a *LobbyError", err)
	}
	switch {
	case le.Command != "new" || le.ExitCode != exit:
		t.Fatalf("error %+v: want command new and exit status %d", le, exit)
	case le.Message == "" || le.Message != strings.TrimSpace(le.Message) || strings.Contains(le.Message, "\r"):
		t.Fatalf("message %q: want it non-empty, trimmed and without CR", le.Message)
	case !strings.HasPrefix(le.Error(), "exe.dev new: "+le.Message):
		t.Fatalf("Error() %q does not give the message %q", le.Error(), le.Message)
	}
	known := false
	for _, k := range []error{nil, ErrUnregistered, ErrQuota, ErrNameTaken, ErrInvalidName, ErrNotFound, ErrAccountLocked} {
		known = known || le.Kind == k
	}
	if !known || le.Kind != nil && !errors.Is(err, le.Kind) {
		t.Fatalf("error %v: unknown kind %v, or errors.Is does not match it", err, le.Kind)
	}
	if fromServer(le.Message, stdout, stderr) ||
		le.Message == "unspecified error" ||
		le.Message == fmt.Sprintf("exit status %d with no message", exit) ||
		strings.HasPrefix(le.Message, "expected JSON, got ") {
		return
	}
	t.Fatalf("message %q is neither the server's words (stdout %q, stderr %q) nor moat's", le.Message, stdout, stderr)
}

// fromServer reports whether msg is what the server wrote: a piece of its
// output, or a string of its JSON, without CRs and trimmed.
func fromServer(msg string, outputs ...[]byte) bool {
	clean := func(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, "\r", "")) }
	for _, o := range outputs {
		if strings.Contains(clean(string(o)), msg) {
			return true
		}
		for s := range jsonStrings(bytes.TrimSpace(o)) {
			if clean(s) == msg {
				return true
			}
		}
	}
	return false
}

// mentionsError reports whether the JSON text b has a string (key or
// value) that is "error" in any case: the lobby's error objects, which
// encoding/json matches without regard to case. Text that is not JSON
// never does.
func mentionsError(b []byte) bool {
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	for s := range jsonStrings(b) {
		if strings.EqualFold(s, "error") {
			return true
		}
	}
	return false
}

// jsonStrings returns the strings (keys and values) of the JSON text b,
// decoded; none when b is not JSON.
func jsonStrings(b []byte) map[string]bool {
	out := map[string]bool{}
	if !json.Valid(b) {
		return out
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // numbers of any size
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			panic(fmt.Sprintf("decoding valid JSON %q: %v", b, err))
		}
		if s, ok := tok.(string); ok {
			out[s] = true
		}
	}
}

func trimmedIn(s string, strs map[string]bool) bool {
	for v := range strs {
		if strings.TrimSpace(v) == s {
			return true
		}
	}
	return false
}

// hostName reports whether h can be dialled as a host name: not empty, no
// white space or control characters, no "/" or "@".
func hostName(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; c <= ' ' || c == 0x7f || c == '/' || c == '@' {
			return false
		}
	}
	return true
}
