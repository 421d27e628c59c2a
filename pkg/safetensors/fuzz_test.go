package safetensors

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRead: any bytes as a safetensors file are read or refused with one
// line, without a panic. Seeds: a file Write made and hand-made headers.
func FuzzRead(f *testing.F) {
	path := filepath.Join(f.TempDir(), "w.safetensors")
	if err := Write(path, map[string]Tensor{"a": {DType: "F32", Shape: []int64{2}, F32: []float32{1, 2}},
		"b": {DType: "I64", Shape: []int64{1}, I64: []int64{7}}}, map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, h := range []string{
		`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`,
		`{"x":{"dtype":"F64","shape":[1000000000,1000000000],"data_offsets":[0,8]}}`,
		`{"__metadata__":{"a":"b"},"x":{"dtype":"I64","shape":[0],"data_offsets":[0,0]}}`,
	} {
		f.Add(append(append(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), h...), make([]byte, 16)...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "f.safetensors")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := Read(path)
		if err != nil && (strings.Contains(err.Error(), "\n") || len(err.Error()) > 2048) {
			t.Errorf("error is not one short line: %.300q", err.Error())
		}
	})
}
