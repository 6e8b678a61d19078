package sshx

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHostsMu serializes appends to known_hosts files in this process.
var knownHostsMu sync.Mutex

// hostKeyCheck returns the host key callback for one dial and the host key
// algorithms to ask for: the types known_hosts already holds for the host,
// so that a server with several host keys shows one we can check rather than
// one we would take for a changed key.
func (r *resolved) hostKeyCheck() (ssh.HostKeyCallback, []string, error) {
	if r.hostKeyCB != nil {
		return r.hostKeyCB, r.hostKeyAlgos, nil
	}
	db, err := r.loadKnownHosts()
	if err != nil {
		return nil, nil, err
	}
	algos := knownAlgorithms(db, r.addr)
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		return r.checkHostKey(db, hostname, remote, key)
	}
	return cb, algos, nil
}

func (r *resolved) loadKnownHosts() (ssh.HostKeyCallback, error) {
	var files []string
	for _, f := range append([]string{r.knownHosts}, r.knownHostsRead...) {
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		}
	}
	db, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: reading known hosts: %w", r.dest, err)
	}
	return db, nil
}

func (r *resolved) checkHostKey(db ssh.HostKeyCallback, hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := db(hostname, remote, key)
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		var re *knownhosts.RevokedError
		if errors.As(err, &re) {
			return &HostKeyRevokedError{Dest: r.dest, Key: keyLabel(key), Err: re}
		}
		return err
	}
	if len(ke.Want) > 0 {
		return r.changedKeyError(ke, key)
	}
	// Unknown host: accept-new. Check again under the lock, in case another
	// client in this process just wrote it.
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	if db2, err := r.loadKnownHosts(); err == nil {
		err := db2(hostname, remote, key)
		if err == nil {
			return nil
		}
		if errors.As(err, &ke) && len(ke.Want) > 0 {
			return r.changedKeyError(ke, key)
		}
	}
	if err := appendKnownHost(r.knownHosts, knownhosts.Normalize(r.addr), key); err != nil {
		return fmt.Errorf("ssh %s: cannot record the new host key in %s: %w", r.dest, r.knownHosts, err)
	}
	r.log.Info("ssh: added new host key to known hosts", "host", knownhosts.Normalize(r.addr), "key", keyLabel(key), "file", r.knownHosts)
	return nil
}

func (r *resolved) changedKeyError(ke *knownhosts.KeyError, presented ssh.PublicKey) error {
	known := ke.Want[0]
	for _, w := range ke.Want {
		if w.Key.Type() == presented.Type() {
			known = w
			break
		}
	}
	return &HostKeyChangedError{
		Dest:      r.dest,
		Host:      knownhosts.Normalize(r.addr),
		File:      known.Filename,
		Line:      known.Line,
		Presented: presented,
		Known:     known.Key,
	}
}

// hostKeyTypeError explains a handshake that failed because the server
// offers no host key of the types asked for: those known_hosts holds for
// it, or those of the pinned keys (Config.HostKeys). Either way the server
// has a different key than the one trusted, so it is refused as a changed
// key is.
func (r *resolved) hostKeyTypeError(ane *ssh.AlgorithmNegotiationError) error {
	offered := strings.Join(ane.RequestedAlgorithms, ", ")
	if r.hostKeyCB != nil {
		return &HostKeyRejectedError{Dest: r.dest, Err: fmt.Errorf("the server offers only %s host keys, none of the type expected (%s): refusing to connect (the connection may be intercepted): %w",
			offered, strings.Join(ane.SupportedAlgorithms, ", "), ane)}
	}
	db, err := r.loadKnownHosts()
	if err != nil {
		return err
	}
	known := knownKeys(db, r.addr)
	if len(known) == 0 {
		return fmt.Errorf("ssh %s: %w", r.dest, ane) // not a known host: not this case
	}
	return &HostKeyChangedError{
		Dest:           r.dest,
		Host:           knownhosts.Normalize(r.addr),
		File:           known[0].Filename,
		Line:           known[0].Line,
		PresentedTypes: ane.RequestedAlgorithms,
		Known:          known[0].Key,
	}
}

func appendKnownHost(file, host string, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	line := knownhosts.Line([]string{host}, key) + "\n"
	f, err := os.OpenFile(file, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	// Make sure the new line starts on a line of its own.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	_, err = f.WriteString(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

var probeKey = sync.OnceValue(func() ssh.PublicKey {
	pub, _, _ := ed25519.GenerateKey(nil)
	k, _ := ssh.NewPublicKey(pub)
	return k
})

// algorithmOrder is the preference among host key algorithms.
var algorithmOrder = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA,
}

// AlgorithmsForKey returns the host key algorithms that make a server
// present key: its type, and for RSA the SHA-2 signature variants first.
func AlgorithmsForKey(key ssh.PublicKey) []string {
	if key.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{key.Type()}
}

// knownKeys lists the keys db holds for addr, in file order.
func knownKeys(db ssh.HostKeyCallback, addr string) []knownhosts.KnownKey {
	// Ask with a key nobody has: the error lists every known key.
	err := db(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey())
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	var out []knownhosts.KnownKey
	for _, w := range ke.Want {
		if !bytes.Equal(w.Key.Marshal(), probeKey().Marshal()) {
			out = append(out, w)
		}
	}
	return out
}

// knownAlgorithms lists the host key algorithms for the key types that db
// holds for addr, or nil when it holds none.
func knownAlgorithms(db ssh.HostKeyCallback, addr string) []string {
	known := knownKeys(db, addr)
	if len(known) == 0 {
		return nil
	}
	set := map[string]bool{}
	for _, w := range known {
		t := w.Key.Type()
		if t == ssh.KeyAlgoRSA {
			set[ssh.KeyAlgoRSASHA512] = true
			set[ssh.KeyAlgoRSASHA256] = true
		}
		set[t] = true
	}
	var algos []string
	for _, a := range algorithmOrder {
		if set[a] {
			algos = append(algos, a)
			delete(set, a)
		}
	}
	rest := make([]string, 0, len(set))
	for a := range set {
		rest = append(rest, a)
	}
	sort.Strings(rest)
	return append(algos, rest...)
}
