package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shortLine fails t unless err is nil or one line of reasonable length.
func shortLine(t *testing.T, err error) {
	t.Helper()
	if err != nil && (strings.Contains(err.Error(), "\n") || len(err.Error()) > 2048) {
		t.Errorf("error is not one short line: %.300q", err.Error())
	}
}

// gz is b gzipped.
func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// FuzzReadIDX: any bytes as a gzipped IDX image file (Fashion-MNIST's
// format) are read or refused with one line, without a panic. The fuzzer
// mutates the inflated bytes, which are gzipped before reading.
func FuzzReadIDX(f *testing.F) {
	img := binary.BigEndian.AppendUint32(nil, 0x803)
	for _, d := range []uint32{2, 2, 2} {
		img = binary.BigEndian.AppendUint32(img, d)
	}
	f.Add(append(img, 1, 2, 3, 4, 5, 6, 7, 8))
	f.Add(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0x803), 0xffffffff))
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(t.TempDir(), "images-idx3-ubyte.gz")
		if err := os.WriteFile(path, gz(raw), 0o644); err != nil {
			t.Fatal(err)
		}
		body, dims, err := readIDX(path, 0x803)
		shortLine(t, err)
		if err == nil {
			n := 1
			for _, d := range dims {
				n *= d
			}
			if n != len(body) {
				t.Errorf("shape %v for %d bytes", dims, len(body))
			}
		}
	})
}

// FuzzLoadCIFAR: any bytes as a CIFAR-10 test batch are read or refused
// with one line, without a panic.
func FuzzLoadCIFAR(f *testing.F) {
	rec := make([]byte, 1+cifarPixels)
	rec[0] = 3
	f.Add(append(append([]byte{}, rec...), rec...))
	f.Add(rec[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "cifar-10-batches-bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cifar-10-batches-bin", "test_batch.bin"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := LoadCIFAR(dir, 10, false)
		shortLine(t, err)
		if err == nil && len(d.Images) != d.Len()*d.ImageSize() {
			t.Errorf("%d labels, %d pixel bytes", d.Len(), len(d.Images))
		}
	})
}

// FuzzReadList: any bytes as a list file ("item label" lines: ImageNet-LT's
// splits, train_subset.txt) are read or refused with one line naming the
// line, without a panic.
func FuzzReadList(f *testing.F) {
	f.Add([]byte("train/n01440764/a.JPEG 0\n# comment\n\nval/b.JPEG 999\n"))
	f.Add([]byte("x 1\ny\n"))
	f.Add([]byte("n01/x.JPEG\x00junk 4\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "list.txt")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		entries, err := ReadList(path, 1000)
		shortLine(t, err)
		for _, e := range entries {
			if e.Label < 0 || e.Label >= 1000 || e.Item == "" {
				t.Errorf("entry %+v", e)
			}
		}
	})
}
