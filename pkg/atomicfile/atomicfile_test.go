package atomicfile

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestWriteFile: a write replaces the file whole and leaves no temporary
// file; a failed one returns an error naming the file, leaves the old
// contents and removes its temporary file.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "summary.json")
	for _, text := range []string{"first", "second, longer"} {
		if err := WriteFile(path, []byte(text)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != text {
			t.Errorf("file holds %q, want %q", b, text)
		}
	}
	// A folder where the file should be: the rename fails.
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(blocked, []byte("new")); err == nil {
		t.Error("writing over a non-empty folder succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want summary.json and blocked only", names)
	}
	if b, _ := os.ReadFile(path); string(b) != "second, longer" {
		t.Errorf("file holds %q after a failed write elsewhere", b)
	}
}

// TestRemoveStale (issue 26, case 10): the temporary file of a write whose
// process died (kill -9 during --export) is removed by the next write of
// the same file; one of a live process, and other files, stay.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.safetensors")
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skipf("cannot start a process: %v", err)
	}
	dead := filepath.Join(dir, fmt.Sprintf(".x.safetensors.tmp%d-123", gone.Process.Pid))
	live := filepath.Join(dir, fmt.Sprintf(".x.safetensors.tmp%d-456", os.Getpid()))
	other := filepath.Join(dir, ".y.safetensors.tmp1-1")
	for _, p := range []string{dead, live, other} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFile(path, []byte("whole")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead writer's temporary file is still there (%v)", err)
	}
	for _, p := range []string{live, other, path} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v, want it kept", filepath.Base(p), err)
		}
	}
}
