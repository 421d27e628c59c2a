package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// numpyVectors is testdata/numpy_shuffle.json, made by
// testdata/gen_numpy_vectors.py with NumPy 1.24.2 (Debian's python3-numpy).
// Its generator vectors are pkg/mt19937's; the long-tailed subsets are these.
type numpyVectors struct {
	Subsets []struct {
		Classes   int     `json:"classes"`
		NMax      int     `json:"n_max"`
		Imbalance float64 `json:"imbalance_factor"`
		Seed      uint32  `json:"seed"`
		Targets   []int64 `json:"targets"`
		Counts    []int   `json:"counts"`
		Chosen    []int64 `json:"chosen"`
	} `json:"lt_subsets"`
}

func loadNumpy(t *testing.T) numpyVectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "numpy_shuffle.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v numpyVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLongTailSubsetMatchesReference(t *testing.T) {
	for _, c := range loadNumpy(t).Subsets {
		counts, err := LongTailCounts(c.Classes, c.NMax, c.Imbalance)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(counts, c.Counts) {
			t.Errorf("counts %v, want %v", counts, c.Counts)
		}
		got, err := LongTailSubset(c.Targets, counts, c.Seed)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.Chosen) {
			t.Errorf("C=%d IF=%v seed %d: subset differs from the reference's", c.Classes, c.Imbalance, c.Seed)
		}
	}
}

func sum(v []int) (s int) {
	for _, x := range v {
		s += x
	}
	return s
}

func TestLongTailCounts(t *testing.T) {
	cases := []struct {
		name              string
		classes, nMax     int
		imb               float64
		total, head, tail int
	}{
		{"cifar100-if100", 100, 500, 100, 10847, 500, 5},
		{"cifar10-if100", 10, 5000, 100, 12406, 5000, 50},
		{"fashion-if100", 10, 600, 100, 1485, 600, 6},
		{"balanced", 10, 50, 1, 500, 50, 50},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := LongTailCounts(c.classes, c.nMax, c.imb)
			if err != nil {
				t.Fatal(err)
			}
			if sum(n) != c.total || n[0] != c.head || n[len(n)-1] != c.tail {
				t.Errorf("total %d head %d tail %d, want %d %d %d", sum(n), n[0], n[len(n)-1], c.total, c.head, c.tail)
			}
		})
	}
	if _, err := LongTailCounts(10, 500, 0.5); err == nil || !strings.Contains(err.Error(), "imbalance factor 0.5") {
		t.Errorf("IF 0.5: err = %v", err)
	}
}

func TestReadListErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, body, want string }{
		{"fields", "12 3\n7\n", "bad.txt:2: want \"item label\""},
		{"label", "12 3\n8 x\n", "bad.txt:2: label \"x\" is not an integer"},
		{"range", "# comment\n\n12 3\n8 10\n", "bad.txt:4: label 10 out of range 0..9"},
		// Issue 26, case 11: said plainly, with the line.
		{"NUL", "12 3\nn01/x.JPEG\x00junk 4\n", "bad.txt:2: a NUL byte in the line"},
		{"long line", "12 3\n" + strings.Repeat("a", 100<<10) + " 1\n", "bad.txt:2: longer than 4096 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "bad.txt")
			os.WriteFile(p, []byte(c.body), 0o644)
			_, err := ReadList(p, 10)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
	p := filepath.Join(dir, "ok.txt")
	if err := WriteIndexList(p, []int64{4, 0}, []int64{5, 1}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadList(p, 10)
	if err != nil || len(got) != 2 || got[0] != (ListEntry{"4", 5, 1}) || got[1] != (ListEntry{"0", 1, 2}) {
		t.Errorf("round trip: %v, %v", got, err)
	}
}

// writeCIFAR10 writes a tiny CIFAR-10 binary layout with n records per file.
func writeCIFAR10(t *testing.T, dir string, n int) {
	t.Helper()
	sub := filepath.Join(dir, "cifar-10-batches-bin")
	os.MkdirAll(sub, 0o755)
	for _, name := range []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"} {
		var b bytes.Buffer
		for r := 0; r < n; r++ {
			b.WriteByte(byte(r % 10))
			b.Write(bytes.Repeat([]byte{byte(r)}, cifarPixels))
		}
		os.WriteFile(filepath.Join(sub, name), b.Bytes(), 0o644)
	}
}

func TestLoadCIFAR(t *testing.T) {
	dir := t.TempDir()
	writeCIFAR10(t, dir, 20)
	d, err := LoadCIFAR(dir, 10, true)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 100 || d.Labels[13] != 3 || d.Images[13*cifarPixels+5] != 13 {
		t.Errorf("loaded %d images, label[13] %d, pixel %d", d.Len(), d.Labels[13], d.Images[13*cifarPixels+5])
	}
	// Truncate one file: the error names it and the incomplete record.
	p := filepath.Join(dir, "cifar-10-batches-bin", "data_batch_3.bin")
	raw, _ := os.ReadFile(p)
	os.WriteFile(p, raw[:len(raw)-100], 0o644)
	_, err = LoadCIFAR(dir, 10, true)
	if err == nil || !strings.Contains(err.Error(), "data_batch_3.bin") || !strings.Contains(err.Error(), "record 19 is incomplete") {
		t.Errorf("truncated file: err = %v", err)
	}
	// A label out of range.
	raw[0] = 12
	os.WriteFile(p, raw, 0o644)
	_, err = LoadCIFAR(dir, 10, true)
	if err == nil || !strings.Contains(err.Error(), "record 0 has label 12") {
		t.Errorf("bad label: err = %v", err)
	}
	_, err = LoadCIFAR(t.TempDir(), 100, false)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: err = %v", err)
	}
}

func writeIDX(t *testing.T, path string, magic uint32, dims []uint32, body []byte) {
	t.Helper()
	var raw bytes.Buffer
	binary.Write(&raw, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&raw, binary.BigEndian, d)
	}
	raw.Write(body)
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(raw.Bytes())
	w.Close()
	os.WriteFile(path, z.Bytes(), 0o644)
}

func TestLoadFashionMNISTFormat(t *testing.T) {
	dir := t.TempDir()
	writeIDX(t, filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), 0x0803, []uint32{3, 28, 28}, bytes.Repeat([]byte{7}, 3*784))
	writeIDX(t, filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"), 0x0801, []uint32{3}, []byte{0, 9, 4})
	d, err := LoadFashionMNIST(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 3 || d.Labels[1] != 9 || d.Height != 28 || d.Channels != 1 {
		t.Errorf("got %d images, labels %v, %dx%d", d.Len(), d.Labels, d.Height, d.Width)
	}
	writeIDX(t, filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), 0x0803, []uint32{3, 28, 28}, bytes.Repeat([]byte{7}, 3*784-5))
	if _, err := LoadFashionMNIST(dir, false); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated IDX: err = %v", err)
	}
	// Untrusted headers (case 9): dimensions whose product overflows or
	// exceeds the data are refused from the header, before any use.
	for _, dims := range [][]uint32{
		{0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, // 2^96: wraps an int64 product
		{1 << 16, 1 << 16, 1 << 16},          // 2^48 = 0 mod 2^48·k on a careless product
		{3, 0, 28},
	} {
		writeIDX(t, filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), 0x0803, dims, bytes.Repeat([]byte{7}, 3*784))
		if _, err := LoadFashionMNIST(dir, false); err == nil || !strings.Contains(err.Error(), "header claims shape") {
			t.Errorf("IDX dims %v: err = %v, want the header refused", dims, err)
		}
	}
}

// TestCIFARFileBounded (case 9): a CIFAR "file" that is a folder or larger
// than any CIFAR file is refused before it is read.
func TestCIFARFileBounded(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "cifar-100-binary")
	if err := os.MkdirAll(filepath.Join(sub, "train.bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCIFAR(dir, 100, true); err == nil || !strings.Contains(err.Error(), "not a CIFAR binary file") {
		t.Errorf("a folder named train.bin: err = %v", err)
	}
	big := filepath.Join(sub, "test.bin")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(60001 * 3074); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	if _, err := LoadCIFAR(dir, 100, false); err == nil || !strings.Contains(err.Error(), "not a CIFAR binary file") {
		t.Errorf("an oversized test.bin: err = %v", err)
	}
}

// TestFashionMNISTLT: the offline default's subset, from Debian's files
// when installed: 1,485 images, 600 of class 0 down to 6 of class 9.
func TestFashionMNISTLT(t *testing.T) {
	d, err := LoadFashionMNIST(DefaultFashionMNISTDir, true)
	if err != nil {
		t.Skipf("Debian's dataset-fashion-mnist is not installed: %v", err)
	}
	counts, _ := LongTailCounts(10, 600, 100)
	idx, err := LongTailSubset(d.Labels, counts, 0)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := d.Subset(idx)
	if err != nil {
		t.Fatal(err)
	}
	got := sub.Counts()
	if sub.Len() != 1485 || got[0] != 600 || got[9] != 6 {
		t.Errorf("%d images, counts %v", sub.Len(), got)
	}
}

func TestSamplers(t *testing.T) {
	labels := make([]int64, 0, 110)
	for i := 0; i < 100; i++ {
		labels = append(labels, 0)
	}
	for i := 0; i < 10; i++ {
		labels = append(labels, 1)
	}
	r := rand.New(rand.NewPCG(3, 4))
	inst, _ := InstanceBalanced.Order(labels, 2, r)
	sorted := slices.Clone(inst)
	slices.Sort(sorted)
	for i, v := range sorted {
		if v != int64(i) {
			t.Fatal("instance sampler is not a permutation")
		}
	}
	frac := func(s Sampler) float64 {
		var tail int
		for k := 0; k < 50; k++ {
			o, err := s.Order(labels, 2, r)
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range o {
				if labels[i] == 1 {
					tail++
				}
			}
		}
		return float64(tail) / float64(50*len(labels))
	}
	if f := frac(ClassBalanced); f < 0.46 || f > 0.54 {
		t.Errorf("class-balanced: tail fraction %.3f, want 0.5", f)
	}
	want := 1 / (1 + 10/3.1623) // √10 / (√100 + √10)
	if f := frac(SquareRoot); f < want-0.03 || f > want+0.03 {
		t.Errorf("square-root: tail fraction %.3f, want %.3f", f, want)
	}
	if _, err := Sampler("x").Order(labels, 2, r); err == nil {
		t.Error("unknown sampler accepted")
	}
}

// TestFIFOsRefused (issue 26): a list file or an IDX file that is a FIFO
// is refused at once, naming it, where a plain open waited for a writer
// forever.
func TestFIFOsRefused(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "train.txt")
	idx := filepath.Join(dir, "t10k-images-idx3-ubyte.gz")
	for _, p := range []string{list, idx} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		path string
		read func() error
	}{
		{list, func() error { _, err := ReadList(list, 10); return err }},
		{idx, func() error { _, err := LoadFashionMNIST(dir, false); return err }},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- tc.read() }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.path+": not a regular file") {
					t.Fatalf("got %v, want %s refused as not a regular file", err, tc.path)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("blocked on the FIFO")
			}
		})
	}
}
