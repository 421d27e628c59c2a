// Package safetensors reads and writes the safetensors format: an 8-byte
// little-endian header length N, N bytes of JSON naming each tensor's
// dtype, shape and byte range, then the tensors' bytes, little-endian and
// row-major. It is what PyTorch, JAX and NumPy users exchange weights in
// without pickle. Only the dtypes lwr's models use are supported: F32, F64
// and I64.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/lwr-go/lwr/pkg/atomicfile"
	"github.com/lwr-go/lwr/pkg/regularfile"
)

// Tensor is one named array: F32 values in F32, F64 in F64, I64 in I64 (one
// of them set, per DType), with its shape.
type Tensor struct {
	DType string // "F32", "F64" or "I64"
	Shape []int64
	F32   []float32
	F64   []float64
	I64   []int64
}

// elems is the number of elements the shape holds.
func (t Tensor) elems() int64 {
	n := int64(1)
	for _, s := range t.Shape {
		n *= s
	}
	return n
}

func (t Tensor) len() int {
	switch t.DType {
	case "F32":
		return len(t.F32)
	case "F64":
		return len(t.F64)
	case "I64":
		return len(t.I64)
	}
	return -1
}

type entry struct {
	DType   string   `json:"dtype"`
	Shape   []int64  `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// Write writes tensors to path atomically, names sorted, with metadata
// (string pairs, may be nil) in the header's __metadata__.
func Write(path string, tensors map[string]Tensor, metadata map[string]string) error {
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var body []byte
	for _, name := range names {
		t := tensors[name]
		if t.len() < 0 {
			return fmt.Errorf("safetensors: %s: dtype %q: want F32, F64 or I64", name, t.DType)
		}
		if int64(t.len()) != t.elems() {
			return fmt.Errorf("safetensors: %s: %d values for shape %v", name, t.len(), t.Shape)
		}
		start := int64(len(body))
		switch t.DType {
		case "F32":
			for _, v := range t.F32 {
				body = binary.LittleEndian.AppendUint32(body, math.Float32bits(v))
			}
		case "F64":
			for _, v := range t.F64 {
				body = binary.LittleEndian.AppendUint64(body, math.Float64bits(v))
			}
		case "I64":
			for _, v := range t.I64 {
				body = binary.LittleEndian.AppendUint64(body, uint64(v))
			}
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		header[name] = entry{DType: t.DType, Shape: shape, Offsets: [2]int64{start, int64(len(body))}}
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 { // the format pads the header with spaces to 8 bytes
		h = append(h, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(append(out, h...), body...)
	return atomicfile.WriteFile(path, out)
}

// maxHeader bounds the header a file may claim (the format's own limit is
// 100 MB; ours hold a few hundred entries).
const maxHeader = 100 << 20

// Read reads a safetensors file. Headers, shapes and byte ranges are
// checked against the file's size before anything is allocated for them,
// and the tensors' byte ranges may not overlap: what is decoded is at most
// the file's size. Anything but a regular file is refused unopened.
func Read(path string) (map[string]Tensor, map[string]string, error) {
	return ReadSelected(path, nil)
}

// Select says, from a tensor's name and shape alone, whether a reader
// decodes it (a caller loading a model decodes only the model's names, so
// that what is decoded is bounded by the model, not by the file). An error
// ends the read before any tensor is decoded. A nil Select takes every
// tensor.
type Select func(name string, shape []int64) (bool, error)

// ReadSelected is Read decoding only the tensors sel takes: every entry is
// checked and offered to sel before any is decoded.
func ReadSelected(path string, sel Select) (map[string]Tensor, map[string]string, error) {
	f, err := regularfile.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: not a safetensors file: "+format, append([]any{path}, args...)...)
	}
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, nil, bad("no header length")
	}
	if n > maxHeader || int64(n) > st.Size()-8 {
		return nil, nil, bad("header of %d bytes in a file of %d", n, st.Size())
	}
	h := make([]byte, n)
	if _, err := io.ReadFull(f, h); err != nil {
		return nil, nil, bad("header: %v", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(h, &raw); err != nil {
		return nil, nil, bad("header: %v", err)
	}
	var meta map[string]string
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, nil, bad("metadata: %v", err)
		}
		delete(raw, "__metadata__")
	}
	bodySize := st.Size() - 8 - int64(n)
	// Every entry is checked, and the ranges against each other, before
	// any data is read.
	type item struct {
		name string
		e    entry
	}
	items := make([]item, 0, len(raw))
	for name, msg := range raw {
		var e entry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, bad("%s: %v", name, err)
		}
		items = append(items, item{name, e})
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].e.Offsets[0] != items[j].e.Offsets[0] {
			return items[i].e.Offsets[0] < items[j].e.Offsets[0]
		}
		return items[i].name < items[j].name
	})
	for k := 1; k < len(items); k++ {
		if a, b := items[k-1], items[k]; b.e.Offsets[0] < a.e.Offsets[1] {
			return nil, nil, bad("%s (bytes %d..%d) and %s (bytes %d..%d) overlap", a.name, a.e.Offsets[0], a.e.Offsets[1], b.name, b.e.Offsets[0], b.e.Offsets[1])
		}
	}
	if len(items) == 0 {
		return nil, nil, errors.New(path + ": no tensors")
	}
	taken := items[:0]
	for _, it := range items {
		name, e := it.name, it.e
		size := map[string]int64{"F32": 4, "F64": 8, "I64": 8}[e.DType]
		if size == 0 {
			return nil, nil, fmt.Errorf("%s: %s: dtype %s: lwr reads F32, F64 and I64", path, name, e.DType)
		}
		elems := int64(1)
		for _, s := range e.Shape {
			if s < 0 || (s > 0 && elems > bodySize/s) {
				return nil, nil, bad("%s: shape %v larger than the file", name, e.Shape)
			}
			elems *= s
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo || hi > bodySize || hi-lo != elems*size {
			return nil, nil, bad("%s: bytes %d..%d for %d values of %s in a body of %d", name, lo, hi, elems, e.DType, bodySize)
		}
		if sel != nil {
			take, err := sel(name, e.Shape)
			if err != nil {
				return nil, nil, err
			}
			if !take {
				continue
			}
		}
		taken = append(taken, it)
	}
	out := map[string]Tensor{}
	for _, it := range taken {
		name, e := it.name, it.e
		t := Tensor{DType: e.DType, Shape: e.Shape}
		lo, hi := e.Offsets[0], e.Offsets[1]
		elems := (hi - lo) / map[string]int64{"F32": 4, "F64": 8, "I64": 8}[e.DType]
		buf := make([]byte, hi-lo)
		if _, err := f.ReadAt(buf, 8+int64(n)+lo); err != nil {
			return nil, nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		switch e.DType {
		case "F32":
			t.F32 = make([]float32, elems)
			for i := range t.F32 {
				t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
			}
		case "F64":
			t.F64 = make([]float64, elems)
			for i := range t.F64 {
				t.F64[i] = math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:]))
			}
		case "I64":
			t.I64 = make([]int64, elems)
			for i := range t.I64 {
				t.I64[i] = int64(binary.LittleEndian.Uint64(buf[8*i:]))
			}
		}
		out[name] = t
	}
	return out, meta, nil
}
