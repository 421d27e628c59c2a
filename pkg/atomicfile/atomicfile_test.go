package atomicfile

import (
	"os"
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
