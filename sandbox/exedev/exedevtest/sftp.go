package exedevtest

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// serveSFTP serves the sftp subsystem on ch. The server runs in the
// emulator's process, so client paths are mapped onto the host the way the
// VM's mount namespace maps them: /home/exedev is the VM's home, /tmp the
// VM's /tmp, /home holds only exedev, the system directories and
// toolchains VMs see are the host's, read-only, and nothing else exists.
// Symbolic links are followed as inside the VM (an absolute target is a
// VM path), and what is under the home and /tmp is reached through an
// os.Root, so a link the VM's processes plant, or swap in meanwhile, never
// leads the server to a host file outside them. Unsandboxed, paths are
// the host's own and the working directory is the VM's home on the host.
func (v *vm) serveSFTP(ch ssh.Channel) {
	fsys := &vmFS{v: v, start: v.homeInside()}
	if v.s.sandbox != nil {
		var err error
		if fsys.home, err = os.OpenRoot(v.home); err == nil {
			defer fsys.home.Close()
			fsys.tmp, err = os.OpenRoot(v.tmp)
		}
		if err != nil {
			ch.Stderr().Write([]byte("exedevtest: sftp: " + err.Error() + "\n"))
			return
		}
		defer fsys.tmp.Close()
	}
	h := sftp.Handlers{FileGet: fsys, FilePut: fsys, FileCmd: fsys, FileList: fsys}
	srv := sftp.NewRequestServer(ch, h, sftp.WithStartDirectory(fsys.start))
	srv.Serve()
	srv.Close()
}

type vmFS struct {
	v         *vm
	start     string
	home, tmp *os.Root // sandboxed: the VM's home and /tmp
}

// loc is where a client path is on the host: rel inside root (the VM's
// home or /tmp, writable), or the host path host (read-only when
// sandboxed).
type loc struct {
	root *os.Root
	rel  string
	host string
	vm   string // the client's path, for errors
	ro   bool
}

// resolve maps a clean absolute client path to where it is, following
// symbolic links in every component but the last, and in the last too
// when follow. write: the operation changes it (refused where the VM
// cannot write).
func (f *vmFS) resolve(p string, write, follow bool) (loc, error) {
	if f.v.s.sandbox == nil {
		return loc{host: filepath.FromSlash(p), vm: p}, nil
	}
	vp, err := f.followLinks(p, follow)
	if err != nil {
		return loc{}, err
	}
	l, err := f.place(vp)
	if err != nil {
		return loc{}, err
	}
	l.vm = p
	if write && l.ro {
		return loc{}, &fs.PathError{Op: "open", Path: p, Err: syscall.EROFS}
	}
	return l, nil
}

// place maps the VM path p, taken as it is (no link followed), to where
// it is.
func (f *vmFS) place(p string) (loc, error) {
	under := func(prefix string) (string, bool) {
		if p == prefix {
			return ".", true
		}
		if rest, ok := strings.CutPrefix(p, prefix+"/"); ok {
			return rest, true
		}
		return "", false
	}
	if rest, ok := under("/home/exedev"); ok {
		return loc{root: f.home, rel: rest}, nil
	}
	if rest, ok := under("/tmp"); ok {
		return loc{root: f.tmp, rel: rest}, nil
	}
	if rest, ok := under("/home"); ok {
		return loc{host: filepath.Join(f.v.dir, "homeroot", rest), ro: true}, nil
	}
	if p != "/" && !f.v.visible(p) {
		return loc{}, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	return loc{host: p, ro: true}, nil
}

// followLinks resolves the symbolic links of the clean absolute VM path p
// as the VM would: in every component but the last, and in the last when
// follow. A component that does not exist ends the walk (the operation
// then fails, or creates it).
func (f *vmFS) followLinks(p string, follow bool) (string, error) {
	done := "/"
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			done = path.Dir(done)
			continue
		}
		next := path.Join(done, c)
		if len(rest) == 0 && !follow {
			return next, nil
		}
		l, err := f.place(next)
		if err != nil {
			return "", err
		}
		target, err := l.readlink()
		if err != nil {
			done = next // not a link, or not there
			continue
		}
		if hops++; hops > 40 {
			return "", &fs.PathError{Op: "open", Path: p, Err: syscall.ELOOP}
		}
		if path.IsAbs(target) {
			done = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return done, nil
}

func (l loc) err(err error) error { return clientErr(err, l.vm) }

func (l loc) readlink() (string, error) {
	if l.root != nil {
		return l.root.Readlink(l.rel)
	}
	return os.Readlink(l.host)
}

func (l loc) openFile(flag int, perm fs.FileMode) (*os.File, error) {
	if l.root != nil {
		return l.root.OpenFile(l.rel, flag, perm)
	}
	return os.OpenFile(l.host, flag, perm)
}

func (l loc) stat() (fs.FileInfo, error) {
	if l.root != nil {
		return l.root.Stat(l.rel)
	}
	return os.Stat(l.host)
}

func (l loc) lstat() (fs.FileInfo, error) {
	if l.root != nil {
		return l.root.Lstat(l.rel)
	}
	return os.Lstat(l.host)
}

func (l loc) mkdir() error {
	if l.root != nil {
		return l.root.Mkdir(l.rel, 0o755)
	}
	return os.Mkdir(l.host, 0o755)
}

func (l loc) remove() error {
	if l.root != nil {
		return l.root.Remove(l.rel)
	}
	return os.Remove(l.host)
}

func (l loc) chmod(mode fs.FileMode) error {
	if l.root != nil {
		return l.root.Chmod(l.rel, mode)
	}
	return os.Chmod(l.host, mode)
}

func (l loc) chtimes(atime, mtime time.Time) error {
	if l.root != nil {
		return l.root.Chtimes(l.rel, atime, mtime)
	}
	return os.Chtimes(l.host, atime, mtime)
}

func (l loc) truncate(size int64) error {
	if l.root != nil {
		file, err := l.root.OpenFile(l.rel, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer file.Close()
		return file.Truncate(size)
	}
	return os.Truncate(l.host, size)
}

func (l loc) symlink(target string) error {
	if l.root != nil {
		return l.root.Symlink(target, l.rel)
	}
	return os.Symlink(target, l.host)
}

// twoPlaces runs op on from and to when both are in the same place: the
// same root, or (unsandboxed) the host.
func twoPlaces(from, to loc, op func(from, to string) error, rootOp func(r *os.Root, from, to string) error) error {
	switch {
	case from.root == nil && to.root == nil:
		return op(from.host, to.host)
	case from.root != nil && from.root == to.root:
		return rootOp(from.root, from.rel, to.rel)
	}
	return &os.LinkError{Op: "rename", Old: from.vm, New: to.vm, Err: syscall.EXDEV}
}

func (l loc) rename(to loc) error {
	return twoPlaces(l, to, os.Rename, (*os.Root).Rename)
}

func (l loc) link(to loc) error {
	return twoPlaces(l, to, os.Link, (*os.Root).Link)
}

func (l loc) readDir() ([]fs.FileInfo, error) {
	var dir *os.File
	var err error
	if l.root != nil {
		dir, err = l.root.Open(l.rel)
	} else {
		dir, err = os.Open(l.host)
	}
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	ents, err := dir.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	infos := make([]fs.FileInfo, 0, len(ents))
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			infos = append(infos, fi)
		}
	}
	return infos, nil
}

// clientErr rewrites host paths in err into the client's path.
func clientErr(err error, p string) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &fs.PathError{Op: pe.Op, Path: p, Err: pe.Err}
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return &fs.PathError{Op: le.Op, Path: p, Err: le.Err}
	}
	return err
}

func (f *vmFS) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	l, err := f.resolve(r.Filepath, false, true)
	if err != nil {
		return nil, err
	}
	file, err := l.openFile(os.O_RDONLY, 0)
	if err != nil {
		return nil, l.err(err)
	}
	return file, nil
}

func (f *vmFS) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	return f.open(r, os.O_WRONLY)
}

func (f *vmFS) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	return f.open(r, os.O_RDWR)
}

func (f *vmFS) open(r *sftp.Request, mode int) (*os.File, error) {
	l, err := f.resolve(r.Filepath, true, true)
	if err != nil {
		return nil, err
	}
	fl := r.Pflags()
	if fl.Creat {
		mode |= os.O_CREATE
	}
	if fl.Trunc {
		mode |= os.O_TRUNC
	}
	if fl.Excl {
		mode |= os.O_EXCL
	}
	file, err := l.openFile(mode, 0o644)
	if err != nil {
		return nil, l.err(err)
	}
	return file, nil
}

func (f *vmFS) Filecmd(r *sftp.Request) error {
	// Setstat acts on what a link leads to; the others on the name.
	l, err := f.resolve(r.Filepath, r.Method != "Symlink", r.Method == "Setstat")
	if r.Method == "Symlink" {
		// Filepath is the link's target (kept as given), Target the new link.
		l, err = f.resolve(r.Target, true, false)
	}
	if err != nil {
		return err
	}
	switch r.Method {
	case "Setstat":
		attrs, flags := r.Attributes(), r.AttrFlags()
		if flags.Size {
			if err := l.truncate(int64(attrs.Size)); err != nil {
				return l.err(err)
			}
		}
		if flags.Permissions {
			mode := attrs.FileMode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
			if err := l.chmod(mode); err != nil {
				return l.err(err)
			}
		}
		if flags.Acmodtime {
			if err := l.chtimes(attrs.AccessTime(), attrs.ModTime()); err != nil {
				return l.err(err)
			}
		}
		return nil
	case "Rename":
		to, err := f.resolve(r.Target, true, false)
		if err != nil {
			return err
		}
		if _, err := to.lstat(); err == nil {
			return &fs.PathError{Op: "rename", Path: r.Target, Err: fs.ErrExist}
		}
		return l.err(l.rename(to))
	case "Rmdir":
		fi, err := l.lstat()
		if err != nil {
			return l.err(err)
		}
		if !fi.IsDir() {
			return &fs.PathError{Op: "rmdir", Path: r.Filepath, Err: syscall.ENOTDIR}
		}
		return l.err(l.remove())
	case "Remove":
		fi, err := l.lstat()
		if err != nil {
			return l.err(err)
		}
		if fi.IsDir() {
			return &fs.PathError{Op: "remove", Path: r.Filepath, Err: syscall.EISDIR}
		}
		return l.err(l.remove())
	case "Mkdir":
		return l.err(l.mkdir())
	case "Link":
		to, err := f.resolve(r.Target, true, false)
		if err != nil {
			return err
		}
		return clientErr(l.link(to), r.Target)
	case "Symlink":
		return l.err(l.symlink(r.Filepath))
	}
	return sftp.ErrSSHFxOpUnsupported
}

func (f *vmFS) PosixRename(r *sftp.Request) error {
	l, err := f.resolve(r.Filepath, true, false)
	if err != nil {
		return err
	}
	to, err := f.resolve(r.Target, true, false)
	if err != nil {
		return err
	}
	return l.err(l.rename(to))
}

func (f *vmFS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	l, err := f.resolve(r.Filepath, false, r.Method != "Readlink")
	if err != nil {
		return nil, err
	}
	switch r.Method {
	case "List":
		infos, err := l.readDir()
		if err != nil {
			return nil, l.err(err)
		}
		return listerAt(infos), nil
	case "Stat":
		fi, err := l.stat()
		if err != nil {
			return nil, l.err(err)
		}
		return listerAt{fi}, nil
	case "Readlink":
		t, err := l.readlink()
		if err != nil {
			return nil, l.err(err)
		}
		return listerAt{namedInfo{name: t}}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

func (f *vmFS) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	l, err := f.resolve(r.Filepath, false, false)
	if err != nil {
		return nil, err
	}
	fi, err := l.lstat()
	if err != nil {
		return nil, l.err(err)
	}
	return listerAt{fi}, nil
}

func (f *vmFS) Readlink(p string) (string, error) {
	l, err := f.resolve(p, false, false)
	if err != nil {
		return "", err
	}
	t, err := l.readlink()
	return t, l.err(err)
}

func (f *vmFS) RealPath(p string) (string, error) {
	if !path.IsAbs(p) {
		p = path.Join(f.start, p)
	}
	return path.Clean(p), nil
}

type listerAt []fs.FileInfo

func (l listerAt) ListAt(dst []fs.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if off+int64(n) >= int64(len(l)) {
		return n, io.EOF
	}
	return n, nil
}

// namedInfo carries only a name (readlink answers).
type namedInfo struct {
	fs.FileInfo
	name string
}

func (n namedInfo) Name() string { return n.name }
