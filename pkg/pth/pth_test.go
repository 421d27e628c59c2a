package pth

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// want is testdata/TAG.json: every tensor gen.py saved, values row-major.
type want map[string]struct {
	Shape  []int64
	Values []float64
}

// TestReadTorchSave reads what PyTorch 1.13 and 2.11 wrote (gen.py): a
// state dict of every dtype a checkpoint holds, strided and offset views
// of one storage, and a training checkpoint with the state dict under
// "model" saved from DDP ("module." names) beside an argparse.Namespace and
// an optimizer state.
func TestReadTorchSave(t *testing.T) {
	for _, tag := range []string{"torch113", "torch211"} {
		raw, err := os.ReadFile(filepath.Join("testdata", tag+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var w want
		if err := json.Unmarshal(raw, &w); err != nil {
			t.Fatal(err)
		}
		for _, file := range []string{tag + "-state.pth", tag + "-checkpoint.pth"} {
			t.Run(file, func(t *testing.T) {
				got, err := Read(filepath.Join("testdata", file))
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(w) {
					t.Errorf("%d tensors, want %d", len(got), len(w))
				}
				for name, e := range w {
					g, ok := got[name]
					if !ok {
						t.Errorf("no %q", name)
						continue
					}
					if !slices.Equal(g.Shape, e.Shape) {
						t.Errorf("%q: shape %v, want %v", name, g.Shape, e.Shape)
					}
					var vals []float64
					for _, v := range g.F32 {
						vals = append(vals, float64(v))
					}
					for _, v := range g.I64 {
						vals = append(vals, float64(v))
					}
					if len(vals) != len(e.Values) {
						t.Errorf("%q: %d values, want %d", name, len(vals), len(e.Values))
						continue
					}
					for k, v := range e.Values {
						// float64 tensors come back as float32.
						if float32(v) != float32(vals[k]) {
							t.Errorf("%q[%d] = %v, want %v", name, k, vals[k], v)
							break
						}
					}
				}
				if g := got["bn.num_batches_tracked"]; g.DType != "I64" || got["conv.weight"].DType != "F32" {
					t.Errorf("dtypes: num_batches_tracked %s, conv.weight %s; want I64, F32", g.DType, got["conv.weight"].DType)
				}
			})
		}
	}
}

func TestHalfToFloat(t *testing.T) {
	for _, c := range []struct {
		h    uint16
		want float32
	}{{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, float32(math.Ldexp(1, -24))}, {0x0200, float32(math.Ldexp(1, -15))},
		{0x8000, float32(math.Copysign(0, -1))}, {0x7c00, float32(math.Inf(1))}} {
		if got := halfToFloat(c.h); got != c.want || math.Signbit(float64(got)) != math.Signbit(float64(c.want)) {
			t.Errorf("halfToFloat(%#04x) = %v, want %v", c.h, got, c.want)
		}
	}
	if !math.IsNaN(float64(halfToFloat(0x7e00))) {
		t.Error("halfToFloat(NaN) is not NaN")
	}
}

// archive writes a torch.save-shaped zip: data.pkl and data/<key> records.
func archive(t *testing.T, pkl []byte, records map[string][]byte) string {
	t.Helper()
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	add := func(name string, b []byte) {
		w, err := z.CreateHeader(&zip.FileHeader{Name: "w/" + name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	add("data.pkl", pkl)
	for k, b := range records {
		add("data/"+k, b)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "w.pth")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pickle is a protocol-2 program for {name: tensor} with one FloatStorage
// of numel elements under key "0", the tensor of size and stride at offset.
func pickle(name string, numel, offset int64, size, stride []int64) []byte {
	var b bytes.Buffer
	str := func(s string) {
		b.WriteByte('X')
		b.Write([]byte{byte(len(s)), 0, 0, 0})
		b.WriteString(s)
	}
	num := func(v int64) {
		b.WriteByte('J')
		b.Write([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
	}
	b.WriteString("\x80\x02ccollections\nOrderedDict\n)R(")
	str(name)
	b.WriteString("ctorch._utils\n_rebuild_tensor_v2\n((")
	str("storage")
	b.WriteString("ctorch\nFloatStorage\n")
	str("0")
	str("cpu")
	num(numel)
	b.WriteString("tQ")
	num(offset)
	b.WriteByte('(')
	for _, s := range size {
		num(s)
	}
	b.WriteString("t(")
	for _, s := range stride {
		num(s)
	}
	b.WriteString("t\x89ccollections\nOrderedDict\n)RtRu.")
	return b.Bytes()
}

// TestReadUntrusted: what a file claims is checked against what it holds;
// each bad file is one error naming the file and what is wrong.
func TestReadUntrusted(t *testing.T) {
	six := make([]byte, 24)
	ok := pickle("w", 6, 0, []int64{2, 3}, []int64{3, 1})
	if got, err := Read(archive(t, ok, map[string][]byte{"0": six})); err != nil || len(got["w"].F32) != 6 {
		t.Fatalf("the well-formed file: %v, %v", got, err)
	}
	legacy := filepath.Join(t.TempDir(), "old.pth")
	os.WriteFile(legacy, []byte("\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03."), 0o644)
	for _, c := range []struct {
		name, file, want string
	}{
		{"storage claims more than its record", archive(t, pickle("w", 1<<40, 0, []int64{2, 3}, []int64{3, 1}), map[string][]byte{"0": six}), "the record holds 24 bytes"},
		{"view beyond its storage", archive(t, pickle("w", 6, 1, []int64{2, 3}, []int64{3, 1}), map[string][]byte{"0": six}), "beyond its storage"},
		{"huge sizes", archive(t, pickle("w", 6, 0, []int64{1 << 30, 1 << 30, 1 << 30}, []int64{0, 0, 0}), map[string][]byte{"0": six}), "beyond its storage"},
		{"negative stride", archive(t, pickle("w", 6, 0, []int64{2, 3}, []int64{-3, 1}), map[string][]byte{"0": six}), "negative"},
		{"record missing", archive(t, ok, nil), "storage \"0\": no record of it under data/"},
		{"truncated pickle", archive(t, ok[:len(ok)/2], map[string][]byte{"0": six}), "truncated"},
		{"unknown opcode", archive(t, []byte("\x80\x02\xff."), nil), "opcode 0xff"},
		{"no tensors", archive(t, []byte("\x80\x02}."), nil), "no tensors found"},
		{"legacy format", legacy, "legacy format"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(c.file)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
				t.Errorf("err = %v, want it to name %s and say %q", err, c.file, c.want)
			}
		})
	}
}

// peakRSS is this process's peak resident memory, in bytes.
func peakRSS(t *testing.T) int64 {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}

// deepTuple is a pickle program that builds a tuple of three copies of the
// level below it, levels deep, from memoised values (a few bytes a level:
// 3^levels leaves), and leaves it on the stack.
func deepTuple(levels int) []byte {
	b := []byte("\x80\x02X\x01\x00\x00\x00x\x85\x94") // ('x',), memo 0
	for k := 1; k <= levels; k++ {
		m := byte(k - 1)
		b = append(b, 'h', m, 'h', m, 'h', m, 0x87, 0x94) // (t, t, t), memo k
	}
	return b
}

// TestReadDeepValues (issue 26, case 2): a few hundred bytes of pickle
// whose values nest 30 levels deep through the memo (3^30 leaves), used as
// a persistent id or as a tensor's arguments, is one short error; the
// message no longer prints the value (which took 1.3 GB in 12 s and then
// all memory) and the process stays below 256 MiB.
func TestReadDeepValues(t *testing.T) {
	deep := deepTuple(30)
	asPid := append(append([]byte{}, deep...), 'Q', '.')
	asArgs := append(append([]byte{}, deep...), []byte("ctorch._utils\n_rebuild_tensor_v2\n(h\x1eh\x1eh\x1eh\x1etR.")...)
	for _, c := range []struct {
		name string
		pkl  []byte
		want string
	}{
		{"persistent id", asPid, "persistent id is a tuple of 3"},
		{"tensor arguments", asArgs, "_rebuild_tensor_v2(a tuple of 3, a tuple of 3, a tuple of 3, a tuple of 3, …)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if len(c.pkl) > 400 {
				t.Fatalf("the program is %d bytes, want a few hundred", len(c.pkl))
			}
			file := archive(t, c.pkl, nil)
			_, err := Read(file)
			if err == nil || !strings.Contains(err.Error(), c.want) || len(err.Error()) > 400 {
				t.Fatalf("err = %.500v, want a short one saying %q", err, c.want)
			}
			if rss := peakRSS(t); rss > 256<<20 {
				t.Errorf("peak resident memory %d MiB, want ≤ 256", rss>>20)
			}
		})
	}
}

// TestReadLargeDict (issue 26, case 5): a dict of 200,000 keys builds in
// linear time (it took minutes: each key was compared with every earlier
// one). The deadline is a hang detector two orders of magnitude above the
// time it takes, not a speed target.
func TestReadLargeDict(t *testing.T) {
	const n = 200_000
	var b bytes.Buffer
	b.WriteString("\x80\x02}(")
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("k%d", i)
		b.WriteByte('X')
		b.Write([]byte{byte(len(k)), 0, 0, 0})
		b.WriteString(k)
		b.WriteByte('J')
		b.Write([]byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)})
	}
	b.WriteString("X\x02\x00\x00\x00k0J\x07\x00\x00\x00u.") // k0 again: replaced, not added
	done := make(chan any, 1)
	go func() {
		v, err := unpickle(b.Bytes())
		if err != nil {
			done <- err
			return
		}
		done <- v
	}()
	select {
	case v := <-done:
		d, ok := v.(*dict)
		if !ok {
			t.Fatalf("got %v, want a dict", describe(v))
		}
		if len(d.keys) != n || d.get("k123456") != int64(123456) || d.get("k0") != int64(7) {
			t.Errorf("%d keys, k123456 = %v, k0 = %v; want %d, 123456, 7", len(d.keys), d.get("k123456"), d.get("k0"), n)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("a 200,000-key dict did not build in 60 s")
	}
	if rss := peakRSS(t); rss > 256<<20 {
		t.Errorf("peak resident memory %d MiB, want ≤ 256", rss>>20)
	}
}

// TestReadFIFO (issue 26, case 6 for --init-from): a FIFO is refused at
// once, not opened for a writer that never comes.
func TestReadFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.pth")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := Read(path); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("err = %v, want not a regular file", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("reading a FIFO hung")
	}
}

// TestReadCompressedBomb (issue 26, case 3): an archive of 1,000
// deflated 2 MB storages (a 2.3 MB file that decoded to 4.7 GB, each
// record within the file's size) is refused once its records decode to
// more than the file holds; the process stays below 256 MiB.
func TestReadCompressedBomb(t *testing.T) {
	const n, numel = 1000, 512 << 10 // 2 MiB of float32 each
	var p bytes.Buffer
	str := func(s string) {
		p.WriteByte('X')
		p.Write([]byte{byte(len(s)), 0, 0, 0})
		p.WriteString(s)
	}
	num := func(v int64) {
		p.WriteByte('J')
		p.Write([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
	}
	p.WriteString("\x80\x02ccollections\nOrderedDict\n)R(")
	for i := 0; i < n; i++ {
		str(fmt.Sprintf("w%d", i))
		p.WriteString("ctorch._utils\n_rebuild_tensor_v2\n((")
		str("storage")
		p.WriteString("ctorch\nFloatStorage\n")
		str(fmt.Sprint(i))
		str("cpu")
		num(numel)
		p.WriteString("tQ")
		num(0)
		p.WriteByte('(')
		num(numel)
		p.WriteString("t(")
		num(1)
		p.WriteString("t\x89ccollections\nOrderedDict\n)RtR")
	}
	p.WriteString("u.")
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	add := func(name string, b []byte, method uint16) {
		w, err := z.CreateHeader(&zip.FileHeader{Name: "w/" + name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	add("data.pkl", p.Bytes(), zip.Store)
	zeros := make([]byte, 4*numel)
	for i := 0; i < n; i++ {
		add(fmt.Sprintf("data/%d", i), zeros, zip.Deflate)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "bomb.pth")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > 4<<20 {
		t.Fatalf("the archive is %d bytes, want a few MB", buf.Len())
	}
	_, err := Read(file)
	if err == nil || !strings.Contains(err.Error(), "decode to more than the file's") || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %v, want one line saying the records decode to more than the file", err)
	}
	if rss := peakRSS(t); rss > 256<<20 {
		t.Errorf("peak resident memory %d MiB, want ≤ 256", rss>>20)
	}
}

// TestReadSelected (issue 26): names (without "module.") and shapes are
// offered before any storage is decoded; a 32 MiB storage left out is
// never read.
func TestReadSelected(t *testing.T) {
	const numel = 8 << 20
	file := archive(t, pickle("module.w", numel, 0, []int64{2, numel / 2}, []int64{numel / 2, 1}), map[string][]byte{"0": make([]byte, 4*numel)})
	var offered []string
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := ReadSelected(file, func(name string, shape []int64) (bool, error) {
		offered = append(offered, fmt.Sprint(name, shape))
		return false, nil
	})
	runtime.ReadMemStats(&after)
	if err != nil || len(got) != 0 || len(offered) != 1 || offered[0] != "w[2 4194304]" {
		t.Fatalf("got %d tensors, %v, offered %v; want none, w[2 4194304] offered", len(got), err, offered)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Errorf("allocated %d MiB leaving the 32 MiB tensor out, want < 4", n>>20)
	}
	got, err = ReadSelected(file, func(string, []int64) (bool, error) { return true, nil })
	if err != nil || len(got["w"].F32) != numel {
		t.Errorf("taken: %d values, %v; want %d", len(got["w"].F32), err, numel)
	}
}
