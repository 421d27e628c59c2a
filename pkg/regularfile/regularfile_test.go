package regularfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"fifo", fifo, "not a regular file"},
		{"folder", dir, "not a regular file"},
		{"device", "/dev/zero", "not a regular file"},
		{"missing", filepath.Join(dir, "none"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := ReadFile(tc.path, 1<<20, "tests"); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
					t.Fatalf("got %v, want an error naming %s with %q", err, tc.path, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("blocked: the open waited for a writer")
			}
		})
	}
	b, err := ReadFile(regular, 5, "tests")
	if err != nil || string(b) != "12345" {
		t.Fatalf("got %q, %v; want 12345", b, err)
	}
	if _, err := ReadFile(regular, 4, "tests"); err == nil || !strings.Contains(err.Error(), "5 bytes, more than the 4 allowed for tests") {
		t.Fatalf("got %v, want the limit named", err)
	}
}
