// Package pth reads the tensors of a PyTorch checkpoint saved by
// torch.save in its zip format (PyTorch 1.6 and later: torchvision's .pth
// files, a model's state_dict, or a training checkpoint holding one) without
// Python.
//
// The pickle inside is read by a restricted unpickler: it builds plain
// values (numbers, strings, tuples, lists, dicts) and tensors, and nothing
// else runs — an unknown class or function becomes an inert placeholder.
// The file is untrusted: every size its records claim is checked against
// the bytes present before anything is allocated for it.
package pth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/lwr-go/lwr/pkg/regularfile"
	"github.com/lwr-go/lwr/pkg/safetensors"
)

// maxPickle bounds the pickle (data.pkl) read into memory; a state dict's
// pickle is a few hundred bytes per tensor.
const maxPickle = 64 << 20

// IsZip reports whether head, a file's first bytes, starts a zip archive
// (the format of torch.save since PyTorch 1.6).
func IsZip(head []byte) bool { return bytes.HasPrefix(head, []byte("PK\x03\x04")) }

// Read returns the tensors of the state dict in the torch.save file at
// file, by name: the top-level dict's tensors, or those of the dict under
// "state_dict", "model" or "model_state_dict" when the top level holds
// none (training checkpoints). A "module." prefix on every name (a model
// saved from DistributedDataParallel) is removed. Floating-point tensors
// come back as F32 (float16, bfloat16 and float64 converted), integer and
// bool ones as I64, in row-major order whatever their strides.
func Read(file string) (map[string]safetensors.Tensor, error) {
	return ReadSelected(file, nil)
}

// ReadSelected is Read decoding only the tensors sel takes, offered by
// name ("module." removed) and shape before any is decoded.
func ReadSelected(file string, sel safetensors.Select) (map[string]safetensors.Tensor, error) {
	f, err := regularfile.Open(file) // a FIFO would block
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		head := make([]byte, 2)
		if _, e := f.ReadAt(head, 0); e == nil && head[0] == 0x80 && head[1] <= 5 {
			return nil, fmt.Errorf("%s: a torch.save file of the legacy format (PyTorch before 1.6); load it in PyTorch and save it again (torch.save) or export safetensors", file)
		}
		return nil, fmt.Errorf("%s: not a torch.save zip archive: %w", file, err)
	}
	r := &reader{file: file, size: st.Size(), files: map[string]*zip.File{}}
	for _, f := range zr.File {
		r.files[f.Name] = f
		if strings.HasSuffix(f.Name, "data.pkl") && (r.prefix == "" || len(f.Name) < len(r.prefix)+len("data.pkl")) {
			r.prefix = strings.TrimSuffix(f.Name, "data.pkl")
		}
	}
	pkl, ok := r.files[r.prefix+"data.pkl"]
	if !ok {
		return nil, fmt.Errorf("%s: no data.pkl in the archive: not a torch.save file", file)
	}
	if bo, ok := r.files[r.prefix+"byteorder"]; ok {
		b, err := r.entry(bo, 16)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(b)); s != "little" {
			return nil, fmt.Errorf("%s: byte order %q: only little-endian files are read", file, s)
		}
	}
	body, err := r.entry(pkl, maxPickle)
	if err != nil {
		return nil, err
	}
	top, err := unpickle(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", file, quote(pkl.Name), err)
	}
	refs := stateDict(top)
	if len(refs) == 0 {
		return nil, fmt.Errorf("%s: no tensors found (want a state_dict, or a checkpoint holding one under \"state_dict\" or \"model\")", file)
	}
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	sort.Strings(names)
	strip := true
	for _, name := range names {
		strip = strip && strings.HasPrefix(name, "module.")
	}
	taken := names[:0]
	for _, name := range names {
		short := name
		if strip {
			short = strings.TrimPrefix(name, "module.")
		}
		if sel != nil {
			take, err := sel(short, refs[name].size)
			if err != nil {
				return nil, err
			}
			if !take {
				continue
			}
		}
		taken = append(taken, name)
	}
	out := make(map[string]safetensors.Tensor, len(taken))
	for _, name := range taken {
		t, err := r.tensor(refs[name])
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, quote(name), err)
		}
		if strip {
			name = strings.TrimPrefix(name, "module.")
		}
		out[name] = t
	}
	return out, nil
}

// stateDict finds the tensors of a loaded checkpoint (see Read).
func stateDict(top any) map[string]*tensorRef {
	d, ok := top.(*dict)
	if !ok {
		return nil
	}
	tensors := func(d *dict) map[string]*tensorRef {
		m := map[string]*tensorRef{}
		for i, k := range d.keys {
			name, ok1 := k.(string)
			t, ok2 := d.vals[i].(*tensorRef)
			if ok1 && ok2 {
				m[name] = t
			}
		}
		return m
	}
	if m := tensors(d); len(m) > 0 {
		return m
	}
	for _, key := range []string{"state_dict", "model", "model_state_dict"} {
		if v, ok := d.get(key).(*dict); ok {
			if m := tensors(v); len(m) > 0 {
				return m
			}
		}
	}
	return nil
}

type reader struct {
	file   string
	size   int64  // the file's bytes
	prefix string // the archive's top folder, "name/"
	files  map[string]*zip.File
	cache  map[string][]byte
	// decoded is the bytes of the records read so far. torch.save stores
	// its records uncompressed, so together they fit in the file: more is
	// a compressed archive made to decode to far more than it holds.
	decoded int64
}

// entry reads f whole, refusing more than limit bytes, and more in all
// the records read than the file's size.
func (r *reader) entry(f *zip.File, limit int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%s: %s claims %d bytes, more than the %d allowed", r.file, quote(f.Name), f.UncompressedSize64, limit)
	}
	if r.decoded+int64(f.UncompressedSize64) > r.size {
		return nil, fmt.Errorf("%s: its records decode to more than the file's %d bytes (at %s): a compressed archive, which torch.save does not write",
			r.file, r.size, quote(f.Name))
	}
	r.decoded += int64(f.UncompressedSize64)
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", r.file, quote(f.Name), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", r.file, quote(f.Name), err)
	}
	if int64(len(b)) > limit || uint64(len(b)) != f.UncompressedSize64 {
		return nil, fmt.Errorf("%s: %s: %d bytes, the archive says %d", r.file, quote(f.Name), len(b), f.UncompressedSize64)
	}
	return b, nil
}

// elemSize is, for each storage class torch.save names, its bytes per
// element and how one element reads: as a float32 (floating-point
// storages) or an int64 (integer and bool ones).
var elemSize = map[string]struct {
	size int64
	f32  func([]byte) float32
	i64  func([]byte) int64
}{
	"FloatStorage":    {size: 4, f32: func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }},
	"DoubleStorage":   {size: 8, f32: func(b []byte) float32 { return float32(math.Float64frombits(binary.LittleEndian.Uint64(b))) }},
	"HalfStorage":     {size: 2, f32: func(b []byte) float32 { return halfToFloat(binary.LittleEndian.Uint16(b)) }},
	"BFloat16Storage": {size: 2, f32: func(b []byte) float32 { return math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16) }},
	"LongStorage":     {size: 8, i64: func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) }},
	"IntStorage":      {size: 4, i64: func(b []byte) int64 { return int64(int32(binary.LittleEndian.Uint32(b))) }},
	"ShortStorage":    {size: 2, i64: func(b []byte) int64 { return int64(int16(binary.LittleEndian.Uint16(b))) }},
	"CharStorage":     {size: 1, i64: func(b []byte) int64 { return int64(int8(b[0])) }},
	"ByteStorage":     {size: 1, i64: func(b []byte) int64 { return int64(b[0]) }},
	"BoolStorage":     {size: 1, i64: func(b []byte) int64 { return int64(b[0]) }},
}

// tensor reads t's elements out of its storage record.
func (r *reader) tensor(t *tensorRef) (safetensors.Tensor, error) {
	es, ok := elemSize[t.storage.class]
	if !ok {
		return safetensors.Tensor{}, fmt.Errorf("storage type torch.%s is not supported", t.storage.class)
	}
	f, ok := r.files[r.prefix+"data/"+t.storage.key]
	if !ok {
		return safetensors.Tensor{}, fmt.Errorf("storage %s: no record of it under data/ in the archive", quote(t.storage.key))
	}
	// The storage's claimed size must be what the archive holds, and the
	// archive (stored, as torch.save writes it) no larger than the file.
	if f.UncompressedSize64 > uint64(r.size) {
		return safetensors.Tensor{}, fmt.Errorf("storage %s: its record claims %d bytes, more than the file's %d", quote(t.storage.key), f.UncompressedSize64, r.size)
	}
	if t.storage.numel < 0 || t.storage.numel > math.MaxInt64/es.size || uint64(t.storage.numel*es.size) != f.UncompressedSize64 {
		return safetensors.Tensor{}, fmt.Errorf("storage %s: %d elements of %d bytes, the record holds %d bytes", quote(t.storage.key), t.storage.numel, es.size, f.UncompressedSize64)
	}
	if len(t.size) != len(t.stride) {
		return safetensors.Tensor{}, fmt.Errorf("%d sizes but %d strides", len(t.size), len(t.stride))
	}
	// Elements and the highest element index, bounded by the storage.
	if t.offset < 0 {
		return safetensors.Tensor{}, fmt.Errorf("storage offset %d", t.offset)
	}
	empty := false
	for i, s := range t.size {
		if s < 0 || t.stride[i] < 0 {
			return safetensors.Tensor{}, fmt.Errorf("size %s, stride %s: negative", dims(t.size), dims(t.stride))
		}
		empty = empty || s == 0
	}
	n, last := int64(1), t.offset
	if empty {
		n = 0
	}
	for i, s := range t.size {
		if empty {
			break
		}
		// n ≤ numel, and last ≤ numel-1 throughout: no product overflows.
		if last >= t.storage.numel || n > t.storage.numel/s ||
			(t.stride[i] > 0 && s-1 > (t.storage.numel-1-last)/t.stride[i]) {
			return safetensors.Tensor{}, fmt.Errorf("size %s, stride %s, offset %d: beyond its storage of %d elements", dims(t.size), dims(t.stride), t.offset, t.storage.numel)
		}
		n *= s
		last += (s - 1) * t.stride[i]
	}
	if n > 0 && last >= t.storage.numel {
		return safetensors.Tensor{}, fmt.Errorf("size %s, stride %s, offset %d: beyond its storage of %d elements", dims(t.size), dims(t.stride), t.offset, t.storage.numel)
	}
	if r.cache == nil {
		r.cache = map[string][]byte{}
	}
	raw, ok := r.cache[t.storage.key]
	if !ok {
		var err error
		if raw, err = r.entry(f, int64(f.UncompressedSize64)); err != nil {
			return safetensors.Tensor{}, err
		}
		r.cache[t.storage.key] = raw
	}
	out := safetensors.Tensor{Shape: append([]int64{}, t.size...)}
	if es.f32 != nil {
		out.DType, out.F32 = "F32", make([]float32, n)
	} else {
		out.DType, out.I64 = "I64", make([]int64, n)
	}
	idx := make([]int64, len(t.size))
	for k := int64(0); k < n; k++ {
		at := t.offset
		for i := range idx {
			at += idx[i] * t.stride[i]
		}
		b := raw[at*es.size : (at+1)*es.size]
		if es.f32 != nil {
			out.F32[k] = es.f32(b)
		} else {
			out.I64[k] = es.i64(b)
		}
		for i := len(idx) - 1; i >= 0; i-- { // next row-major index
			if idx[i]++; idx[i] < t.size[i] {
				break
			}
			idx[i] = 0
		}
	}
	return out, nil
}

// halfToFloat converts IEEE 754 binary16 to float32.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for frac&0x400 == 0 {
			frac <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (frac&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}

// dims prints a size or stride from the file, at most its first 8 entries.
func dims(v []int64) string {
	if len(v) <= 8 {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%v… (%d dimensions)", v[:8], len(v))
}

// quote is s, a name out of an untrusted file, fit for one line of an
// error: quoted (control characters escaped) and clipped to 80 bytes.
func quote(s string) string {
	if len(s) > 80 {
		return strconv.Quote(s[:80]) + "…"
	}
	return strconv.Quote(s)
}
