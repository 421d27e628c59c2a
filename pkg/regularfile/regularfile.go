// Package regularfile opens the files a user names (checkpoints, weights,
// lists, data sets, configs) the one safe way: without blocking, refusing
// anything but a regular file, and reading at most a stated number of
// bytes. A FIFO's plain open waits for a writer forever and /dev/zero
// never ends; both are refused here with one line naming the path.
//
// It imports nothing heavier than os and builds without cgo.
package regularfile

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// Open opens path for reading without blocking (regular files ignore the
// flag; a FIFO's open returns at once) and refuses anything but a regular
// file, naming it and its type.
func Open(path string) (*os.File, error) { return OpenFile(path, os.O_RDONLY, 0) }

// OpenFile is os.OpenFile (flag, perm) without blocking, refusing anything
// but a regular file as Open does: for files a run appends to in a folder
// a user names.
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK, perm)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file (%v)", path, st.Mode().Type())
	}
	return f, nil
}

// ReadFile reads the regular file at path whole, refusing one of more than
// maxBytes bytes (checked against its size before reading, and again while
// reading, should it grow). what names the limit in the error, such as
// "config files" or a flag.
func ReadFile(path string, maxBytes int64, what string) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed for %s", path, st.Size(), maxBytes, what)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > maxBytes {
		return nil, fmt.Errorf("%s: grew past the %d bytes allowed for %s while read", path, maxBytes, what)
	}
	return b, nil
}
