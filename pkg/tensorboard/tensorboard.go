// Package tensorboard writes TensorBoard event files: scalars, histograms,
// PNG images and text, readable by TensorBoard and by PyTorch's and
// TensorFlow's event readers.
//
// An event file is a sequence of TFRecords, each
//
//	uint64 length, uint32 masked CRC-32C of the length, data, uint32 masked CRC-32C of data
//
// (little-endian; masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8), whose
// data is one tensorboard.Event protocol buffer (TensorBoard's
// compat/proto/event.proto and summary.proto). The first record holds the
// file version "brain.Event:2". Messages are encoded field by field with
// protowire: lwr writes the few fields it needs, and reads back only the
// step (to cut a file at a resumed run's epoch).
//
// It imports nothing heavier than os and protowire, and builds without cgo.
package tensorboard

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/lwr-go/lwr/pkg/atomicfile"
	"github.com/lwr-go/lwr/pkg/regularfile"
)

// FilePrefix starts every event file's name; TensorBoard finds files by it.
const FilePrefix = "events.out.tfevents."

// fileVersion is what the first event of a file says.
const fileVersion = "brain.Event:2"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is TFRecord's masked CRC-32C of b.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// appendRecord appends data as one TFRecord to buf.
func appendRecord(buf, data []byte) []byte {
	n := binary.LittleEndian.AppendUint64(nil, uint64(len(data)))
	buf = append(buf, n...)
	buf = binary.LittleEndian.AppendUint32(buf, maskedCRC(n))
	buf = append(buf, data...)
	return binary.LittleEndian.AppendUint32(buf, maskedCRC(data))
}

// maxRecord bounds one record as read back: lwr's largest are its PNG
// figures, a few hundred kilobytes.
const maxRecord = 64 << 20

// Records splits an event file's bytes into its records' data, checking
// each length and CRC. An error names the record (from 0) and its offset.
func Records(b []byte) ([][]byte, error) {
	var out [][]byte
	for off := 0; off < len(b); {
		if len(b)-off < 12 {
			return out, fmt.Errorf("record %d at byte %d: %d bytes left, a record header needs 12", len(out), off, len(b)-off)
		}
		head := b[off : off+8]
		n := binary.LittleEndian.Uint64(head)
		if binary.LittleEndian.Uint32(b[off+8:]) != maskedCRC(head) {
			return out, fmt.Errorf("record %d at byte %d: the length's CRC does not match", len(out), off)
		}
		if n > maxRecord || int(n)+4 > len(b)-off-12 {
			return out, fmt.Errorf("record %d at byte %d: claims %d bytes of data and 4 of CRC, %d follow its header", len(out), off, n, len(b)-off-12)
		}
		data := b[off+12 : off+12+int(n)]
		if binary.LittleEndian.Uint32(b[off+12+int(n):]) != maskedCRC(data) {
			return out, fmt.Errorf("record %d at byte %d: the data's CRC does not match", len(out), off)
		}
		out = append(out, data)
		off += 16 + int(n)
	}
	return out, nil
}

// EventStep is the step of an encoded Event (0 when it has none), and
// whether it holds the file version rather than a summary.
func EventStep(event []byte) (step int64, version bool, err error) {
	for len(event) > 0 {
		num, typ, n := protowire.ConsumeTag(event)
		if n < 0 {
			return 0, false, protowire.ParseError(n)
		}
		event = event[n:]
		switch {
		case num == 2 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(event)
			if m < 0 {
				return 0, false, protowire.ParseError(m)
			}
			step = int64(v)
		case num == 3:
			version = true
		}
		m := protowire.ConsumeFieldValue(num, typ, event)
		if m < 0 {
			return 0, false, protowire.ParseError(m)
		}
		event = event[m:]
	}
	return step, version, nil
}

// Writer appends events to one event file. Each Write* call is one event,
// written and synced at once (events come once an epoch); an error names
// the file.
type Writer struct {
	f    *os.File
	path string
	now  func() time.Time
}

// Create starts a new event file in dir, named as TensorBoard's writers
// name theirs: events.out.tfevents.<seconds>.<host>.<pid>.0.
func Create(dir string) (*Writer, error) {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r == '/' || r < ' ' {
			return '_'
		}
		return r
	}, host)
	path := filepath.Join(dir, fmt.Sprintf("%s%010d.%s.%d.0", FilePrefix, time.Now().Unix(), host, os.Getpid()))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, path: path, now: time.Now}
	ev := protowire.AppendTag(nil, 3, protowire.BytesType)
	ev = protowire.AppendString(ev, fileVersion)
	if err := w.write(0, ev); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// Continue opens dir's event file to append to after keep steps: events of
// later steps (written after the checkpoint a run resumes from) are cut,
// so that a resumed run's events equal an uninterrupted run's, step for
// step. With no event file in dir it creates one (created true). The cut
// file replaces the old one durably (atomicfile) before anything is
// appended. A keep below 0 keeps only the file version.
func Continue(dir string, keep int64) (w *Writer, created bool, err error) {
	files, err := filepath.Glob(filepath.Join(dir, FilePrefix+"*"))
	if err != nil {
		return nil, false, err
	}
	sort.Strings(files)
	if len(files) == 0 {
		w, err := Create(dir)
		return w, err == nil, err
	}
	path := files[len(files)-1] // the newest: names start with the time
	b, err := regularfile.ReadFile(path, 1<<30, "event files")
	if err != nil {
		return nil, false, err
	}
	recs, err := Records(b)
	// A record cut short by a crash is dropped with what follows it.
	var kept []byte
	for _, r := range recs {
		step, version, perr := EventStep(r)
		if perr != nil {
			break
		}
		if version || (step <= keep && keep >= 0) {
			kept = appendRecord(kept, r)
		}
	}
	if len(kept) != len(b) || err != nil {
		if err := atomicfile.WriteFile(path, kept); err != nil {
			return nil, false, err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, false, err
	}
	return &Writer{f: f, path: path, now: time.Now}, false, nil
}

// Path is the event file's path.
func (w *Writer) Path() string { return w.path }

// Close closes the file.
func (w *Writer) Close() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	return nil
}

// write appends one event of the given step whose other fields are body
// (encoded), and syncs the file.
func (w *Writer) write(step int64, body []byte) error {
	ev := protowire.AppendTag(nil, 1, protowire.Fixed64Type)
	ev = protowire.AppendFixed64(ev, math.Float64bits(float64(w.now().UnixNano())/1e9))
	if step != 0 {
		ev = protowire.AppendTag(ev, 2, protowire.VarintType)
		ev = protowire.AppendVarint(ev, uint64(step))
	}
	ev = append(ev, body...)
	if _, err := w.f.Write(appendRecord(nil, ev)); err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	return nil
}

// summary is an Event's summary field holding the encoded values.
func summary(values ...[]byte) []byte {
	var s []byte
	for _, v := range values {
		s = protowire.AppendTag(s, 1, protowire.BytesType)
		s = protowire.AppendBytes(s, v)
	}
	b := protowire.AppendTag(nil, 5, protowire.BytesType)
	return protowire.AppendBytes(b, s)
}

// value starts a Summary.Value of tag.
func value(tag string) []byte {
	v := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendString(v, tag)
}

// Scalar is one named value.
type Scalar struct {
	Tag   string
	Value float64
}

// WriteScalars writes the scalars of one step as one event (float32
// values, as TensorBoard stores them). NaN is written as NaN; TensorBoard
// shows a gap.
func (w *Writer) WriteScalars(step int64, scalars []Scalar) error {
	if len(scalars) == 0 {
		return nil
	}
	values := make([][]byte, len(scalars))
	for i, s := range scalars {
		v := value(s.Tag)
		v = protowire.AppendTag(v, 2, protowire.Fixed32Type)
		values[i] = protowire.AppendFixed32(v, math.Float32bits(float32(s.Value)))
	}
	return w.write(step, summary(values...))
}

// WriteHistogram writes the distribution of values (NaN and infinities
// left out) as TensorBoard's histogram of buckets equal-width buckets
// between their least and greatest.
func (w *Writer) WriteHistogram(step int64, tag string, values []float64, buckets int) error {
	var finite []float64
	for _, v := range values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			finite = append(finite, v)
		}
	}
	if len(finite) == 0 || buckets < 1 {
		return nil
	}
	lo, hi := finite[0], finite[0]
	var sum, sq float64
	for _, v := range finite {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
		sum += v
		sq += v * v
	}
	width := (hi - lo) / float64(buckets)
	counts := make([]float64, buckets)
	limits := make([]float64, buckets)
	for i := range limits {
		limits[i] = lo + width*float64(i+1)
	}
	limits[buckets-1] = hi
	for _, v := range finite {
		i := buckets - 1
		if width > 0 {
			i = min(int((v-lo)/width), buckets-1)
		}
		counts[i]++
	}
	h := appendDouble(nil, 1, lo)
	h = appendDouble(h, 2, hi)
	h = appendDouble(h, 3, float64(len(finite)))
	h = appendDouble(h, 4, sum)
	h = appendDouble(h, 5, sq)
	h = appendPacked(h, 6, limits)
	h = appendPacked(h, 7, counts)
	v := value(tag)
	v = protowire.AppendTag(v, 5, protowire.BytesType)
	v = protowire.AppendBytes(v, h)
	return w.write(step, summary(v))
}

// WriteImage writes a PNG image of the given size (pixels).
func (w *Writer) WriteImage(step int64, tag string, png []byte, width, height int) error {
	img := protowire.AppendTag(nil, 1, protowire.VarintType)
	img = protowire.AppendVarint(img, uint64(height))
	img = protowire.AppendTag(img, 2, protowire.VarintType)
	img = protowire.AppendVarint(img, uint64(width))
	img = protowire.AppendTag(img, 3, protowire.VarintType)
	img = protowire.AppendVarint(img, 4) // RGBA
	img = protowire.AppendTag(img, 4, protowire.BytesType)
	img = protowire.AppendBytes(img, png)
	v := value(tag)
	v = protowire.AppendTag(v, 4, protowire.BytesType)
	v = protowire.AppendBytes(v, img)
	return w.write(step, summary(v))
}

// WriteText writes text (TensorBoard's text plugin renders it as
// Markdown) as a scalar string tensor.
func (w *Writer) WriteText(step int64, tag, text string) error {
	plugin := protowire.AppendTag(nil, 1, protowire.BytesType)
	plugin = protowire.AppendString(plugin, "text")
	meta := protowire.AppendTag(nil, 1, protowire.BytesType)
	meta = protowire.AppendBytes(meta, plugin)
	tensor := protowire.AppendTag(nil, 1, protowire.VarintType)
	tensor = protowire.AppendVarint(tensor, 7) // DT_STRING
	tensor = protowire.AppendTag(tensor, 2, protowire.BytesType)
	tensor = protowire.AppendBytes(tensor, nil) // shape []: a scalar
	tensor = protowire.AppendTag(tensor, 8, protowire.BytesType)
	tensor = protowire.AppendString(tensor, text)
	v := value(tag)
	v = protowire.AppendTag(v, 9, protowire.BytesType)
	v = protowire.AppendBytes(v, meta)
	v = protowire.AppendTag(v, 8, protowire.BytesType)
	v = protowire.AppendBytes(v, tensor)
	return w.write(step, summary(v))
}

func appendDouble(b []byte, num protowire.Number, v float64) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(v))
}

func appendPacked(b []byte, num protowire.Number, vs []float64) []byte {
	var p []byte
	for _, v := range vs {
		p = protowire.AppendFixed64(p, math.Float64bits(v))
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, p)
}
