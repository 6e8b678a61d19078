package exedev

// SetNameSource makes Create use names from next; it returns a restore func.
func SetNameSource(next func() string) (restore func()) {
	old := newName
	newName = next
	return func() { newName = old }
}

var RandomName = randomName
