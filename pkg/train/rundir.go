package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lwr-go/lwr/pkg/config"
)

// Files of a run folder (config's names).
const (
	ConfigFile     = config.ConfigFile
	LogFile        = config.LogFile
	SummaryFile    = config.SummaryFile
	SubsetFile     = config.SubsetFile
	PrevCheckpoint = config.PrevCheckpoint
	lockFile       = ".lock"
)

// runFiles are the names that mark a folder as holding a run: a new run
// refuses such a folder unless told to resume it or move it aside.
var runFiles = []string{ConfigFile, LogFile, CheckpointFile, PrevCheckpoint, SummaryFile, SubsetFile,
	"accuracy_by_count.png", "cosine_matrix.png", "curves.png"}

// ErrBusy reports a run folder locked by another process.
var ErrBusy = errors.New("in use by another run")

// runDir is an output folder held by this process: an exclusive flock on
// its .lock file for the run's duration (released by the kernel if the
// process dies, so kill -9 leaves no stale lock).
type runDir struct {
	path string
	lock *os.File
}

// CheckOut reports whether c may use c.Out, without taking it: a new run
// needs a folder that holds no run (or --force), a resumed one a
// checkpoint or, for a run stopped before its first, its config.json. cmd checks every run of a preset with it before training the
// first.
func CheckOut(c Config) error {
	if c.Resume {
		// A run killed before its first checkpoint left its config.json:
		// resuming it starts it again.
		for _, name := range []string{CheckpointFile, PrevCheckpoint, ConfigFile} {
			if _, err := os.Stat(filepath.Join(c.Out, name)); err == nil {
				return nil
			}
		}
		return fmt.Errorf("--resume: %s has no %s: nothing to resume (start the run without --resume)", c.Out, CheckpointFile)
	}
	if found := existingRunFiles(c.Out); len(found) > 0 && !c.Force {
		if len(found) > 3 {
			found = append(found[:3], "…")
		}
		return fmt.Errorf("--out %s holds another run (%s): continue it with --resume, move it aside with --force, or choose another --out",
			c.Out, strings.Join(found, ", "))
	}
	return nil
}

// existingRunFiles lists the run files present in dir.
func existingRunFiles(dir string) []string {
	var found []string
	for _, name := range runFiles {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			found = append(found, name)
		}
	}
	return found
}

// openRunDir takes c.Out for a run: it checks the folder (CheckOut), locks
// it, moves an old run aside with --force (to OUT.old-TIME, never deleting
// it), creates the folder and removes temporary files that an earlier
// process killed mid-write left behind.
func openRunDir(c Config, logf func(string, ...any)) (*runDir, error) {
	if err := CheckOut(c); err != nil {
		return nil, err
	}
	if !c.Resume && c.Force && len(existingRunFiles(c.Out)) > 0 {
		old, err := lockDir(c.Out)
		if err != nil {
			return nil, err
		}
		aside := fmt.Sprintf("%s.old-%s", filepath.Clean(c.Out), time.Now().Format("20060102-150405"))
		for k := 2; exists(aside); k++ {
			aside = fmt.Sprintf("%s.old-%s-%d", filepath.Clean(c.Out), time.Now().Format("20060102-150405"), k)
		}
		err = os.Rename(c.Out, aside)
		old.close()
		if err != nil {
			return nil, fmt.Errorf("--force: move %s aside: %w", c.Out, err)
		}
		if err := syncDir(filepath.Dir(aside)); err != nil {
			return nil, err
		}
		logf("--force: moved the run in %s to %s", c.Out, aside)
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	d, err := lockDir(c.Out)
	if err != nil {
		return nil, err
	}
	if !c.Resume { // checked before the lock: another process may have started a run meanwhile
		if found := existingRunFiles(c.Out); len(found) > 0 {
			d.close()
			return nil, fmt.Errorf("--out %s holds another run (%s)", c.Out, strings.Join(found, ", "))
		}
	}
	removeStaleTemps(c.Out)
	return d, nil
}

// lockDir takes dir's lock file, or says which process holds it.
func lockDir(dir string) (*runDir, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--out %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		holder := strings.TrimSpace(string(b[:n]))
		if holder == "" {
			holder = "unknown"
		}
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("--out %s: %w (pid %s); wait for it, or choose another --out", dir, ErrBusy, holder)
		}
		return nil, fmt.Errorf("--out %s: lock %s: %w", dir, path, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &runDir{path: dir, lock: f}, nil
}

// close releases the lock; the lock file stays (removing it would race
// with a process opening it).
func (d *runDir) close() {
	if d != nil && d.lock != nil {
		d.lock.Close()
		d.lock = nil
	}
}

// removeStaleTemps removes the temporary files (".NAME.tmp*") that a
// process killed while writing left in dir. Only the lock holder calls it.
func removeStaleTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".tmp") && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// syncDir makes the entries of dir (a rename, a new file) durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
