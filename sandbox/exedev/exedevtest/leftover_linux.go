//go:build linux

package exedevtest

// machineNS is the mount namespace of m ("" for none), by which a VM's
// processes are found once the emulator is gone.
func machineNS(m *machine) string {
	if m == nil {
		return ""
	}
	return m.mntNS
}
