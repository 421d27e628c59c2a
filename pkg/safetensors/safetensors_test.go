package safetensors

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
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

// TestOverlapsAndTotals (issue 26, case 4): a 2 MB file whose 1,000
// tensors all name the same byte range (2.7 GB decoded before) is refused
// before any data is read, naming two of them; ranges that only touch are
// read; the process stays below 256 MiB.
func TestOverlapsAndTotals(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, header string, body int) string {
		path := filepath.Join(dir, name)
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
		b = append(append(b, header...), make([]byte, body)...)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	const body = 2 << 20
	var h strings.Builder
	h.WriteString("{")
	for i := 0; i < 1000; i++ {
		if i > 0 {
			h.WriteString(",")
		}
		fmt.Fprintf(&h, `"t%d":{"dtype":"F32","shape":[%d],"data_offsets":[0,%d]}`, i, body/4, body)
	}
	h.WriteString("}")
	_, _, err := Read(write("shared.safetensors", h.String(), body))
	if err == nil || !strings.Contains(err.Error(), "overlap") || strings.Contains(err.Error(), "\n") {
		t.Errorf("1,000 tensors on one range: err = %v, want one line about overlapping ranges", err)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil && ru.Maxrss*1024 > 256<<20 {
		t.Errorf("peak resident memory %d MiB, want ≤ 256", ru.Maxrss>>10)
	}
	touching := write("touching.safetensors", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"z":{"dtype":"F32","shape":[0],"data_offsets":[16,16]}}`, 16)
	if got, _, err := Read(touching); err != nil || len(got) != 3 {
		t.Errorf("ranges that touch: %d tensors, %v", len(got), err)
	}
	partial := write("partial.safetensors", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 16)
	if _, _, err := Read(partial); err == nil || !strings.Contains(err.Error(), "a (bytes 0..8) and b (bytes 4..12) overlap") {
		t.Errorf("ranges that overlap by 4 bytes: err = %v", err)
	}
}

// TestReadFIFO (issue 26, case 6 for weight files): a FIFO is refused at
// once, not opened for a writer that never comes.
func TestReadFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, _, err := Read(path); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("err = %v, want not a regular file", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("reading a FIFO hung")
	}
}

// allocated is the bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestReadSelected (issue 26): names and shapes are offered before
// anything is decoded, and what is not taken is never decoded: a 32 MiB
// tensor left out costs no 32 MiB. An error from the selection ends the
// read with that error.
func TestReadSelected(t *testing.T) {
	const big = 8 << 20 // float32s
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := Write(path, map[string]Tensor{
		"small": {DType: "F32", Shape: []int64{2}, F32: []float32{1, 2}},
		"big":   {DType: "F32", Shape: []int64{big}, F32: make([]float32, big)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	var offered []string
	var got map[string]Tensor
	var err error
	n := allocated(func() {
		got, _, err = ReadSelected(path, func(name string, shape []int64) (bool, error) {
			offered = append(offered, fmt.Sprint(name, shape))
			return name == "small", nil
		})
	})
	slices.Sort(offered)
	if err != nil || len(got) != 1 || !slices.Equal(got["small"].F32, []float32{1, 2}) || !slices.Equal(offered, []string{"big[8388608]", "small[2]"}) {
		t.Fatalf("got %v, %v, offered %v; want small only, both offered", got, err, offered)
	}
	if n > 4<<20 {
		t.Errorf("allocated %d MiB leaving the 32 MiB tensor out, want < 4", n>>20)
	}
	_, _, err = ReadSelected(path, func(name string, shape []int64) (bool, error) {
		if name == "small" {
			return false, fmt.Errorf("small: shape %v, the model's [3]", shape)
		}
		return true, nil
	})
	if err == nil || err.Error() != "small: shape [2], the model's [3]" {
		t.Errorf("err = %v, want the selection's own error", err)
	}
}
