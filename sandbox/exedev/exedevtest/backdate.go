package exedevtest

import (
	"fmt"
	"time"
)

// Backdate makes VM name look d older: its creation time, which `ls`
// shows as created_at, moves d into the past. Tests use it to make old
// leftovers for garbage collection (moat sandbox gc).
func (s *Server) Backdate(name string, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vms[name]
	if !ok {
		return fmt.Errorf("exedevtest: no VM named %q", name)
	}
	v.created = v.created.Add(-d)
	return nil
}

// createdAt is v's creation time, read under the lock Backdate writes it
// under.
func (v *vm) createdAt() time.Time {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	return v.created
}
