package safetensors

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.safetensors")
	in := map[string]Tensor{
		"a.weight":               {DType: "F32", Shape: []int64{2, 3}, F32: []float32{1, -2, 3.5, 0, 1e-30, 7}},
		"b":                      {DType: "F64", Shape: []int64{2}, F64: []float64{0.1, -0.2}},
		"bn.num_batches_tracked": {DType: "I64", Shape: []int64{}, I64: []int64{42}},
	}
	if err := Write(path, in, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if n := binary.LittleEndian.Uint64(raw); n%8 != 0 {
		t.Errorf("header of %d bytes: want a multiple of 8", n)
	}
	out, meta, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if meta["format"] != "pt" || len(out) != 3 {
		t.Fatalf("meta %v, %d tensors", meta, len(out))
	}
	if a := out["a.weight"]; !slices.Equal(a.Shape, []int64{2, 3}) || !slices.Equal(a.F32, in["a.weight"].F32) {
		t.Errorf("a.weight = %+v", a)
	}
	if b := out["b"]; !slices.Equal(b.F64, in["b"].F64) {
		t.Errorf("b = %+v", b)
	}
	if c := out["bn.num_batches_tracked"]; len(c.Shape) != 0 || !slices.Equal(c.I64, []int64{42}) {
		t.Errorf("scalar = %+v", c)
	}
	if err := Write(path, map[string]Tensor{"x": {DType: "F32", Shape: []int64{3}, F32: []float32{1}}}, nil); err == nil {
		t.Error("3-element shape with 1 value written")
	}
}

// TestUntrusted: headers that lie about their length, shapes or byte
// ranges are refused before anything of that size is allocated.
func TestUntrusted(t *testing.T) {
	dir := t.TempDir()
	n := 0
	file := func(header string, body int) string {
		n++
		path := filepath.Join(dir, "f"+string(rune('a'+n)))
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
		b = append(append(b, header...), make([]byte, body)...)
		os.WriteFile(path, b, 0o644)
		return path
	}
	cases := map[string]struct {
		path, want string
	}{
		"huge header": {func() string {
			path := filepath.Join(dir, "h")
			os.WriteFile(path, binary.LittleEndian.AppendUint64(nil, 1<<40), 0o644)
			return path
		}(), "header of 1099511627776 bytes"},
		"huge shape":   {file(`{"x":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,8]}}`, 8), "larger than the file"},
		"past the end": {file(`{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, 8), "bytes 0..16"},
		"wrong size":   {file(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}`, 8), "bytes 0..8 for 1 values"},
		"bf16":         {file(`{"x":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}`, 8), "dtype BF16"},
		"not json":     {file(`{"x":`, 8), "not a safetensors file"},
	}
	for name, k := range cases {
		_, _, err := Read(k.path)
		if err == nil || !strings.Contains(err.Error(), k.want) {
			t.Errorf("%s: err = %v, want %q", name, err, k.want)
		}
	}
}
