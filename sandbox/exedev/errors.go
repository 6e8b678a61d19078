package exedev

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of lobby errors, for errors.Is. A *LobbyError matches the kind its
// message was recognised as.
var (
	// ErrUnregistered: the SSH key is not registered with an exe.dev account.
	ErrUnregistered = errors.New("ssh key not registered with exe.dev")
	// ErrQuota: a plan limit (VM count, CPU, memory, disk) was reached.
	ErrQuota = errors.New("exe.dev plan limit reached")
	// ErrNameTaken: the VM name is not available (names are global).
	ErrNameTaken = errors.New("exe.dev VM name not available")
	// ErrInvalidName: the VM name breaks exe.dev's naming rules.
	ErrInvalidName = errors.New("invalid exe.dev VM name")
	// ErrNotFound: no such VM (or image).
	ErrNotFound = errors.New("not found on exe.dev")
	// ErrAccountLocked: exe.dev asks the user to contact support.
	ErrAccountLocked = errors.New("exe.dev account locked")
)

// LobbyError is an error reported by exe.dev's lobby. Message holds the
// server's own words.
type LobbyError struct {
	Command  string // the lobby command, e.g. "new" or "rm"
	Message  string // what the server said, trimmed
	ExitCode int    // the lobby's exit status (1 for every error seen)
	Kind     error  // one of the Err* kinds, or nil when not recognised
}

func (e *LobbyError) Error() string {
	msg := fmt.Sprintf("exe.dev %s: %s", e.Command, e.Message)
	switch e.Kind {
	case ErrUnregistered:
		msg += " (this SSH key is not registered: run `ssh exe.dev` once to sign up, or point moat at your exe.dev key, e.g. ~/.ssh/id_exe)"
	case ErrQuota:
		msg += " (remove VMs you no longer need, e.g. `moat sandbox gc`, or raise your plan's limits)"
	}
	return msg
}

// Permanent reports whether asking again cannot help (sandbox.Permanent):
// an unregistered key, a locked account, a plan limit, a name exe.dev
// refuses.
func (e *LobbyError) Permanent() bool {
	switch e.Kind {
	case ErrUnregistered, ErrAccountLocked, ErrQuota, ErrInvalidName:
		return true
	}
	return false
}

// Is reports whether target is e's kind.
func (e *LobbyError) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// classify recognises the kind of a lobby error message.
func classify(msg string) error {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "command not found"), strings.Contains(m, "unknown command"):
		return nil // the lobby lacks the command: never "the VM is gone"
	case strings.Contains(m, "please complete registration"):
		return ErrUnregistered
	case strings.Contains(m, "contact support@exe.dev (trace"):
		return ErrAccountLocked
	case strings.Contains(m, "maximum number of"), strings.Contains(m, "quota"),
		strings.Contains(m, "cannot exceed"), strings.Contains(m, "plan limit"),
		strings.Contains(m, "limit reached"), strings.Contains(m, "exceeds your plan"):
		return ErrQuota
	case strings.Contains(m, "is not available"), strings.Contains(m, "already exists"):
		return ErrNameTaken
	case strings.Contains(m, "invalid vm name"), strings.Contains(m, "invalid box name"),
		strings.Contains(m, "new vm name cannot match"), strings.Contains(m, "new box name cannot match"):
		return ErrInvalidName
	case strings.Contains(m, "not found"):
		return ErrNotFound
	}
	return nil
}
