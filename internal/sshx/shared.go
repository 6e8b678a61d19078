package sshx

import "sync"

// Shared is a Client that is made on first use and closed when its last
// user lets go, so a provider keeps one connection to a host exactly while
// some sandbox (or a create) needs it.
type Shared struct {
	cfg    func() Config
	mu     sync.Mutex
	client *Client
	refs   int
}

// NewShared returns a Shared whose Client is made from cfg() on first use.
func NewShared(cfg func() Config) *Shared { return &Shared{cfg: cfg} }

// Acquire returns the Client, making it if needed. Every successful Acquire
// must be matched by one Release.
func (s *Shared) Acquire() (*Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		c, err := New(s.cfg())
		if err != nil {
			return nil, err
		}
		s.client = c
	}
	s.refs++
	return s.client, nil
}

// Release lets go of the Client; the last Release closes it.
func (s *Shared) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.refs == 0 && s.client != nil {
		s.client.Close()
		s.client = nil
	}
}
