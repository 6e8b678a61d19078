package exedevtest

import (
	"encoding/json"
	"testing"
	"time"
)

func TestBackdate(t *testing.T) {
	s := NewServer(t)
	lobby := mustDial(t, s, s.LobbyAddr(), "me")
	old := newVM(t, lobby, "--name=old-vm --tag=moat")
	newVM(t, lobby, "--name=new-vm --tag=moat")
	created := func() map[string]time.Time {
		t.Helper()
		r := lobbyRun(t, lobby, "ls --json")
		var v struct {
			VMs []struct {
				Name      string `json:"vm_name"`
				CreatedAt string `json:"created_at"`
			} `json:"vms"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("ls: %v: %q", err, r.stdout)
		}
		m := map[string]time.Time{}
		for _, vm := range v.VMs {
			ts, err := time.Parse(time.RFC3339, vm.CreatedAt)
			if err != nil {
				t.Fatalf("created_at of %s: %v", vm.Name, err)
			}
			m[vm.Name] = ts
		}
		return m
	}
	before := created()
	if err := s.Backdate(old.VMName, 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	after := created()
	if d := before[old.VMName].Sub(after[old.VMName]); d < 3*time.Hour-time.Second || d > 3*time.Hour+time.Second {
		t.Errorf("old-vm moved back by %s; want 3h", d)
	}
	if !after["new-vm"].Equal(before["new-vm"]) {
		t.Errorf("new-vm's creation time changed: %s → %s", before["new-vm"], after["new-vm"])
	}
	if err := s.Backdate("no-such-vm", time.Hour); err == nil {
		t.Error("Backdate of an unknown VM: no error")
	}
}
