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

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// serveSFTP serves the sftp subsystem on ch. The server runs in the
// emulator's process, so client paths are mapped onto the host the way the
// VM's mount namespace maps them: /home/exedev is the VM's home, /tmp the
// VM's /tmp, /home holds only exedev, the system directories and
// toolchains VMs see are the host's, read-only, and nothing else exists. Unsandboxed, paths are the host's own and the working
// directory is the VM's home on the host.
func (v *vm) serveSFTP(ch ssh.Channel) {
	fsys := &vmFS{v: v, start: v.homeInside()}
	h := sftp.Handlers{FileGet: fsys, FilePut: fsys, FileCmd: fsys, FileList: fsys}
	srv := sftp.NewRequestServer(ch, h, sftp.WithStartDirectory(fsys.start))
	srv.Serve()
	srv.Close()
}

type vmFS struct {
	v     *vm
	start string
}

// resolve maps a clean absolute client path to a host path.
func (f *vmFS) resolve(p string, write bool) (string, error) {
	if f.v.s.sandbox == nil {
		return filepath.FromSlash(p), nil
	}
	under := func(prefix string) (string, bool) {
		if p == prefix {
			return "", true
		}
		if rest, ok := strings.CutPrefix(p, prefix+"/"); ok {
			return rest, true
		}
		return "", false
	}
	if rest, ok := under("/home/exedev"); ok {
		return filepath.Join(f.v.home, rest), nil
	}
	if rest, ok := under("/tmp"); ok {
		return filepath.Join(f.v.tmp, rest), nil
	}
	if write {
		return "", &fs.PathError{Op: "open", Path: p, Err: syscall.EROFS}
	}
	if rest, ok := under("/home"); ok {
		return filepath.Join(f.v.dir, "homeroot", rest), nil
	}
	if !f.v.visible(p) {
		return "", &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	return p, nil
}

// clientErr rewrites host paths in err into the client's path.
func clientErr(err error, p string) error {
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
	host, err := f.resolve(r.Filepath, false)
	if err != nil {
		return nil, err
	}
	file, err := os.Open(host)
	return file, clientErr(err, r.Filepath)
}

func (f *vmFS) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	return f.open(r, os.O_WRONLY)
}

func (f *vmFS) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	return f.open(r, os.O_RDWR)
}

func (f *vmFS) open(r *sftp.Request, mode int) (*os.File, error) {
	host, err := f.resolve(r.Filepath, true)
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
	file, err := os.OpenFile(host, mode, 0o644)
	if err != nil {
		return nil, clientErr(err, r.Filepath)
	}
	return file, nil
}

func (f *vmFS) Filecmd(r *sftp.Request) error {
	host, err := f.resolve(r.Filepath, r.Method != "Symlink")
	if err != nil {
		return err
	}
	switch r.Method {
	case "Setstat":
		attrs, flags := r.Attributes(), r.AttrFlags()
		if flags.Size {
			if err := os.Truncate(host, int64(attrs.Size)); err != nil {
				return clientErr(err, r.Filepath)
			}
		}
		if flags.Permissions {
			mode := attrs.FileMode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
			if err := os.Chmod(host, mode); err != nil {
				return clientErr(err, r.Filepath)
			}
		}
		if flags.Acmodtime {
			if err := os.Chtimes(host, attrs.AccessTime(), attrs.ModTime()); err != nil {
				return clientErr(err, r.Filepath)
			}
		}
		return nil
	case "Rename":
		target, err := f.resolve(r.Target, true)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(target); err == nil {
			return &fs.PathError{Op: "rename", Path: r.Target, Err: fs.ErrExist}
		}
		return clientErr(os.Rename(host, target), r.Filepath)
	case "Rmdir":
		fi, err := os.Lstat(host)
		if err != nil {
			return clientErr(err, r.Filepath)
		}
		if !fi.IsDir() {
			return &fs.PathError{Op: "rmdir", Path: r.Filepath, Err: syscall.ENOTDIR}
		}
		return clientErr(os.Remove(host), r.Filepath)
	case "Remove":
		fi, err := os.Lstat(host)
		if err != nil {
			return clientErr(err, r.Filepath)
		}
		if fi.IsDir() {
			return &fs.PathError{Op: "remove", Path: r.Filepath, Err: syscall.EISDIR}
		}
		return clientErr(os.Remove(host), r.Filepath)
	case "Mkdir":
		return clientErr(os.Mkdir(host, 0o755), r.Filepath)
	case "Link":
		target, err := f.resolve(r.Target, true)
		if err != nil {
			return err
		}
		return clientErr(os.Link(host, target), r.Target)
	case "Symlink":
		// Filepath is the link's target (kept as given), Target the new link.
		link, err := f.resolve(r.Target, true)
		if err != nil {
			return err
		}
		return clientErr(os.Symlink(r.Filepath, link), r.Target)
	}
	return sftp.ErrSSHFxOpUnsupported
}

func (f *vmFS) PosixRename(r *sftp.Request) error {
	host, err := f.resolve(r.Filepath, true)
	if err != nil {
		return err
	}
	target, err := f.resolve(r.Target, true)
	if err != nil {
		return err
	}
	return clientErr(os.Rename(host, target), r.Filepath)
}

func (f *vmFS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	host, err := f.resolve(r.Filepath, false)
	if err != nil {
		return nil, err
	}
	switch r.Method {
	case "List":
		ents, err := os.ReadDir(host)
		if err != nil {
			return nil, clientErr(err, r.Filepath)
		}
		infos := make([]fs.FileInfo, 0, len(ents))
		for _, e := range ents {
			if fi, err := e.Info(); err == nil {
				infos = append(infos, fi)
			}
		}
		return listerAt(infos), nil
	case "Stat":
		fi, err := os.Stat(host)
		if err != nil {
			return nil, clientErr(err, r.Filepath)
		}
		return listerAt{fi}, nil
	case "Readlink":
		t, err := os.Readlink(host)
		if err != nil {
			return nil, clientErr(err, r.Filepath)
		}
		return listerAt{namedInfo{name: t}}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

func (f *vmFS) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	host, err := f.resolve(r.Filepath, false)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(host)
	if err != nil {
		return nil, clientErr(err, r.Filepath)
	}
	return listerAt{fi}, nil
}

func (f *vmFS) Readlink(p string) (string, error) {
	host, err := f.resolve(p, false)
	if err != nil {
		return "", err
	}
	t, err := os.Readlink(host)
	return t, clientErr(err, p)
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
