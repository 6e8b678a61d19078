package hostgit

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// maxTextFile bounds the git files moat reads itself (config, commondir,
// info/exclude, an excludes file): a repository can point them at
// /dev/zero, a FIFO or a huge file.
const maxTextFile = 4 << 20

// ReadText reads the regular file name, inside root when root is not nil,
// up to maxTextFile bytes. It never blocks on a FIFO or reads a device:
// anything but a regular file of at most that size is an error saying so.
func ReadText(root *os.Root, name string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading would wait for a writer.
	flags := os.O_RDONLY | syscall.O_NONBLOCK
	var (
		f   *os.File
		err error
	)
	if root != nil {
		f, err = root.OpenFile(name, flags, 0)
	} else {
		f, err = os.OpenFile(name, flags, 0)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%v)", name, fi.Mode().Type())
	}
	if fi.Size() > maxTextFile {
		return nil, fmt.Errorf("%s is larger than %d MiB", name, maxTextFile>>20)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTextFile+1))
	if err == nil && len(data) > maxTextFile {
		err = fmt.Errorf("%s is larger than %d MiB", name, maxTextFile>>20)
	}
	return data, err
}
