package imagenet

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lwr-go/lwr/pkg/jpeg"
)

// appendLine adds "item label" to list.
func appendLine(t *testing.T, list, line string) {
	t.Helper()
	f, err := os.OpenFile(list, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

// TestListEntriesConfined (case 9): list entries that leave the image
// folder, or name something other than a regular file (a device, a FIFO
// that would hang a worker, a folder), are refused before training, each
// error naming the list's line.
func TestListEntriesConfined(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, root string) string // returns the entry
		want  string
	}{
		{"parent", func(*testing.T, string) string { return "../../etc/passwd" }, "is not a path inside the image folder"},
		{"inner parent", func(*testing.T, string) string { return "train/../../x.JPEG" }, "is not a path inside the image folder"},
		{"absolute", func(*testing.T, string) string { return "/dev/zero" }, "is not a path inside the image folder"},
		{"device link", func(t *testing.T, root string) string {
			if err := os.Symlink("/dev/zero", filepath.Join(root, "zero.JPEG")); err != nil {
				t.Fatal(err)
			}
			return "zero.JPEG"
		}, "is not a regular file (D"},
		{"fifo", func(t *testing.T, root string) string {
			if err := syscall.Mkfifo(filepath.Join(root, "pipe.JPEG"), 0o644); err != nil {
				t.Skip("no FIFOs here:", err)
			}
			return "pipe.JPEG"
		}, "is not a regular file (p"},
		{"folder", func(*testing.T, string) string { return "train" }, "is not a regular file (d"},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			root, list := writeTree(t, 3)
			appendLine(t, list, k.setup(t, root)+" 0")
			_, err := Open(root, list, 3, true)
			if err == nil || !strings.Contains(err.Error(), list+": line 4:") || !strings.Contains(err.Error(), k.want) {
				t.Errorf("err = %v, want line 4 named and %q", err, k.want)
			}
		})
	}
}

// TestReadImageFile: a FIFO or a device is refused at once (a plain open
// of a FIFO blocks until a writer comes), a file over the limit before it
// is read.
func TestReadImageFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadImageFile(fifo, MaxImageBytes); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("FIFO: err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO blocked")
	}
	if _, err := ReadImageFile("/dev/zero", MaxImageBytes); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("/dev/zero: err = %v", err)
	}
	big := filepath.Join(dir, "big.JPEG")
	if err := os.WriteFile(big, make([]byte, 1001), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadImageFile(big, 1000); err == nil || !strings.Contains(err.Error(), "1001 bytes, more than the 1000 allowed for --max-image-bytes") {
		t.Errorf("over the limit: err = %v", err)
	}
	// Issue 26, case 11: an empty file said so ("image: unknown format").
	empty := filepath.Join(dir, "empty.JPEG")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadImageFile(empty, MaxImageBytes); err == nil || !strings.Contains(err.Error(), empty+": an empty file (0 bytes)") {
		t.Errorf("empty file: err = %v", err)
	}
}

// TestCheckImages: --check-images reads every header before training; a
// bad image stops the run naming its line, or with --skip-corrupt is left
// out and counted.
func TestCheckImages(t *testing.T) {
	root, list := writeTree(t, 5)
	// A PNG header claiming 100000×100000 pixels, named like a JPEG.
	ihdr := []byte("IHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02\x00\x00\x00")
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d"), ihdr...)
	png = binary.BigEndian.AppendUint32(png, crc32.ChecksumIEEE(ihdr))
	if err := os.WriteFile(filepath.Join(root, "bomb.JPEG"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "empty.JPEG"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	appendLine(t, list, "bomb.JPEG 1")
	appendLine(t, list, "empty.JPEG 2")
	d, err := Open(root, list, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Check(jpeg.MaxPixels, MaxImageBytes, 2, false); err == nil || !strings.Contains(err.Error(), list+": line 6:") || !strings.Contains(err.Error(), "--max-image-pixels") {
		t.Errorf("check: err = %v, want line 6 and the limit named", err)
	}
	dropped, err := d.Check(jpeg.MaxPixels, MaxImageBytes, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 2 || d.Len() != 5 || d.Lines[4] != 5 || !strings.Contains(dropped[1], "line 7:") || !strings.Contains(dropped[1], "empty file") {
		t.Errorf("skip: dropped %q, %d kept (lines %v)", dropped, d.Len(), d.Lines)
	}
}

// TestCheckFindsCorruptData: the check decodes, so a JPEG whose data is
// damaged (libjpeg would fill the damage with grey) fails it, and
// --skip-corrupt leaves it out.
func TestCheckFindsCorruptData(t *testing.T) {
	root, list := writeTree(t, 4)
	path := filepath.Join(root, "train/n00000001/n00000001_1.JPEG")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sos := bytes.Index(b, []byte{0xFF, 0xDA})
	for i := sos + 30; i < sos+60 && i < len(b)-4; i++ {
		b[i] = 0xFF
		if i%2 == 1 {
			b[i] = 0xD3 // an RST marker out of place
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Open(root, list, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Check(jpeg.MaxPixels, MaxImageBytes, 2, false); err == nil || !strings.Contains(err.Error(), "line 2:") || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("damaged JPEG: err = %v, want line 2 and corrupt data named", err)
	}
	dropped, err := d.Check(jpeg.MaxPixels, MaxImageBytes, 2, true)
	if err != nil || len(dropped) != 1 || d.Len() != 3 {
		t.Errorf("--skip-corrupt: dropped %v, kept %d, err %v", dropped, d.Len(), err)
	}
}
