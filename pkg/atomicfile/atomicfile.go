// Package atomicfile writes files durably and whole: a reader, or a run
// resumed after a crash, sees the old contents or the new, never a part.
// It imports nothing but the standard library.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// WriteFile writes data to a temporary file beside path, syncs it and
// renames it over path, then syncs the folder: path is never half-written,
// and once WriteFile returns the new contents survive a crash. On an
// error the temporary file is removed and path keeps what it held.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	RemoveStale(path)
	tmp, err := WriteTemp(path, data)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	// The rename is durable once the folder is synced.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync %s: %w", path, dir, err)
	}
	return nil
}

// WriteTemp writes data to a new temporary file beside path (named
// .NAME.tmpPID-N, as RemoveStale expects) and syncs it, for the caller to
// rename into place: WriteFile's first half, for writers that must do
// more between the write and the rename (a checkpoint keeps the one it
// replaces). On an error the file is removed; the error names it.
func WriteTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix(path)+strconv.Itoa(os.Getpid())+"-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// tempPrefix is the start of the names of path's temporary files:
// ".NAME.tmp", then the writer's process id, "-" and a random number.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp" }

// RemoveStale removes the temporary files of earlier writes of path whose
// process is gone (killed mid-write: kill -9, a power cut); those of live
// processes stay. WriteFile calls it, so a file written again cleans up
// after the write that died.
func RemoveStale(path string) {
	dir, prefix := filepath.Dir(path), tempPrefix(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || alive(pid) {
			continue
		}
		os.Remove(filepath.Join(dir, e.Name()))
	}
}

// alive reports whether process pid exists (signal 0 checks without
// sending; EPERM means it exists under another user).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
