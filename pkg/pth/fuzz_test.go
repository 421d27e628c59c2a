package pth

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// archiveBytes is a torch.save archive of pkl and records (as archive
// makes, in memory).
func archiveBytes(pkl []byte, records map[string][]byte) []byte {
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	add := func(name string, b []byte) {
		w, _ := z.CreateHeader(&zip.FileHeader{Name: "w/" + name, Method: zip.Store})
		w.Write(b)
	}
	add("data.pkl", pkl)
	for k, b := range records {
		add("data/"+k, b)
	}
	z.Close()
	return buf.Bytes()
}

// oneLine fails t unless err is nil or one line of reasonable length:
// errors about untrusted files must not print what they hold.
func oneLine(t *testing.T, err error) {
	t.Helper()
	if err != nil && (strings.Contains(err.Error(), "\n") || len(err.Error()) > 2048) {
		t.Errorf("error is not one short line: %.300q", err.Error())
	}
}

// FuzzRead: any bytes as a .pth file are read or refused with one line,
// without a panic. Seeds: the files PyTorch 1.13 and 2.11 wrote
// (testdata/) and the tests' hand-made archives.
func FuzzRead(f *testing.F) {
	for _, name := range []string{"torch113-state.pth", "torch211-state.pth", "torch211-checkpoint.pth"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	six := make([]byte, 24)
	f.Add(archiveBytes(pickle("w", 6, 0, []int64{2, 3}, []int64{3, 1}), map[string][]byte{"0": six}))
	f.Add(archiveBytes(append(deepTuple(8), 'Q', '.'), nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "f.pth")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Read(path)
		oneLine(t, err)
	})
}

// FuzzUnpickle: any pickle program runs to a value or an error, without a
// panic, within the stack and memo bounds.
func FuzzUnpickle(f *testing.F) {
	f.Add(pickle("w", 6, 0, []int64{2, 3}, []int64{3, 1}))
	f.Add(append(deepTuple(5), 'Q', '.'))
	f.Add([]byte("\x80\x02}(X\x01\x00\x00\x00aJ\x01\x00\x00\x00u."))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := unpickle(b)
		oneLine(t, err)
	})
}
