package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/lwr-go/lwr/pkg/regularfile"
)

// Dataset is a set of small images held in memory as uint8, channel-first.
type Dataset struct {
	Name     string
	Images   []uint8 // N·C·H·W bytes, image after image, each [C,H,W]
	Labels   []int64 // N class indices in [0, Classes)
	Classes  int
	Channels int
	Height   int
	Width    int
	Mean     []float64 // per-channel mean of the pixel values in [0,1], for normalisation
	Std      []float64 // per-channel standard deviation, likewise
}

// Len is the number of images.
func (d *Dataset) Len() int { return len(d.Labels) }

// ImageSize is the number of bytes of one image.
func (d *Dataset) ImageSize() int { return d.Channels * d.Height * d.Width }

// Counts returns the number of images of each class.
func (d *Dataset) Counts() []int64 {
	n := make([]int64, d.Classes)
	for _, y := range d.Labels {
		n[y]++
	}
	return n
}

// Subset returns the images at the given indices, in that order.
func (d *Dataset) Subset(indices []int64) (*Dataset, error) {
	out := *d
	size := d.ImageSize()
	out.Images = make([]uint8, 0, len(indices)*size)
	out.Labels = make([]int64, 0, len(indices))
	for _, i := range indices {
		if i < 0 || int(i) >= d.Len() {
			return nil, fmt.Errorf("%s: index %d out of range 0..%d", d.Name, i, d.Len()-1)
		}
		out.Images = append(out.Images, d.Images[int(i)*size:int(i+1)*size]...)
		out.Labels = append(out.Labels, d.Labels[i])
	}
	return &out, nil
}

// Fashion-MNIST's per-channel statistics over its training set.
var fashionMean, fashionStd = []float64{0.2860}, []float64{0.3530}

// CIFAR statistics as the reference training scripts normalise with.
var cifarMean, cifarStd = []float64{0.4914, 0.4822, 0.4465}, []float64{0.2023, 0.1994, 0.2010}

// DefaultFashionMNISTDir is where Debian's dataset-fashion-mnist installs.
const DefaultFashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// LoadFashionMNIST reads the train or test split (train true/false) from
// the four gzip IDX files of dir.
func LoadFashionMNIST(dir string, train bool) (*Dataset, error) {
	prefix := "t10k"
	if train {
		prefix = "train"
	}
	imgPath := filepath.Join(dir, prefix+"-images-idx3-ubyte.gz")
	lblPath := filepath.Join(dir, prefix+"-labels-idx1-ubyte.gz")
	imgs, dims, err := readIDX(imgPath, 0x0803)
	if err != nil {
		return nil, err
	}
	lbls, ldims, err := readIDX(lblPath, 0x0801)
	if err != nil {
		return nil, err
	}
	if len(dims) != 3 || len(ldims) != 1 || dims[0] != ldims[0] {
		return nil, fmt.Errorf("%s and %s: shapes %v and %v do not pair up", imgPath, lblPath, dims, ldims)
	}
	d := &Dataset{Name: "fashion-mnist", Images: imgs, Labels: make([]int64, len(lbls)), Classes: 10, Channels: 1,
		Height: dims[1], Width: dims[2], Mean: fashionMean, Std: fashionStd}
	for i, y := range lbls {
		if y >= 10 {
			return nil, fmt.Errorf("%s: label %d of item %d out of range 0..9", lblPath, y, i)
		}
		d.Labels[i] = int64(y)
	}
	return d, nil
}

// maxIDXBytes bounds an IDX file once inflated (Fashion-MNIST's largest
// is 47 MB).
const maxIDXBytes = 1 << 30

// readIDX reads a gzip-compressed IDX file of unsigned bytes with the
// given magic number, returning the data and the dimensions.
func readIDX(path string, magic uint32) ([]uint8, []int, error) {
	f, err := regularfile.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not gzip: %w", path, err)
	}
	// Bounded: a small gzip may inflate to any size.
	raw, err := io.ReadAll(io.LimitReader(zr, maxIDXBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: corrupt or truncated gzip: %w", path, err)
	}
	if len(raw) > maxIDXBytes {
		return nil, nil, fmt.Errorf("%s: inflates to more than %d bytes: not an image data set of this kind", path, maxIDXBytes)
	}
	ndim := int(magic & 0xff)
	if len(raw) < 4+4*ndim || binary.BigEndian.Uint32(raw) != magic {
		return nil, nil, fmt.Errorf("%s: not an IDX file with magic %#x", path, magic)
	}
	dims := make([]int, ndim)
	total := 1
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(raw[4+4*i:]))
		// Each factor below the data's length keeps the product from
		// overflowing before it is compared with the length.
		if dims[i] == 0 || dims[i] > len(raw) || total > len(raw)/dims[i] {
			return nil, nil, fmt.Errorf("%s: header claims shape %v…, more than its %d bytes hold", path, dims[:i+1], len(raw))
		}
		total *= dims[i]
	}
	body := raw[4+4*ndim:]
	if len(body) != total {
		return nil, nil, fmt.Errorf("%s: %d data bytes, want %d for shape %v (truncated?)", path, len(body), total, dims)
	}
	return body, dims, nil
}

// CIFAR binary format: each record is the label byte(s) then 3×32×32
// pixels, red plane first.
const cifarPixels = 3 * 32 * 32

// LoadCIFAR reads CIFAR-10 (classes 10: cifar-10-batches-bin/
// data_batch_1..5.bin, test_batch.bin) or CIFAR-100 (classes 100:
// cifar-100-binary/train.bin, test.bin; the fine label) from dir, the folder
// holding those subfolders.
func LoadCIFAR(dir string, classes int, train bool) (*Dataset, error) {
	var files []string
	labelBytes, labelAt := 1, 0
	switch classes {
	case 10:
		if train {
			for i := 1; i <= 5; i++ {
				files = append(files, filepath.Join(dir, "cifar-10-batches-bin", fmt.Sprintf("data_batch_%d.bin", i)))
			}
		} else {
			files = []string{filepath.Join(dir, "cifar-10-batches-bin", "test_batch.bin")}
		}
	case 100:
		labelBytes, labelAt = 2, 1
		name := "test.bin"
		if train {
			name = "train.bin"
		}
		files = []string{filepath.Join(dir, "cifar-100-binary", name)}
	default:
		return nil, fmt.Errorf("cifar: %d classes: want 10 or 100", classes)
	}
	d := &Dataset{Name: fmt.Sprintf("cifar%d", classes), Classes: classes, Channels: 3, Height: 32, Width: 32,
		Mean: cifarMean, Std: cifarStd}
	record := labelBytes + cifarPixels
	for _, path := range files {
		st, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: missing: run scripts/download_cifar.sh or pass --data-dir", path)
		}
		if err != nil {
			return nil, err
		}
		// CIFAR's largest file holds 50,000 records (154 MB).
		if !st.Mode().IsRegular() || st.Size() > 60000*int64(record) {
			return nil, fmt.Errorf("%s: %d bytes (%v): not a CIFAR binary file (at most 60,000 %d-byte records)", path, st.Size(), st.Mode().Type(), record)
		}
		raw, err := regularfile.ReadFile(path, 60000*int64(record), "CIFAR binary files")
		if err != nil {
			return nil, err
		}
		if len(raw) == 0 || len(raw)%record != 0 {
			return nil, fmt.Errorf("%s: %d bytes is not a whole number of %d-byte records (truncated or corrupt; record %d is incomplete)",
				path, len(raw), record, len(raw)/record)
		}
		for r := 0; r < len(raw)/record; r++ {
			rec := raw[r*record : (r+1)*record]
			y := int64(rec[labelAt])
			if int(y) >= classes {
				return nil, fmt.Errorf("%s: record %d has label %d, outside 0..%d (corrupt file?)", path, r, y, classes-1)
			}
			d.Labels = append(d.Labels, y)
			d.Images = append(d.Images, rec[labelBytes:]...)
		}
	}
	return d, nil
}

// Synthetic is a CIFAR-shaped data set that a small network can learn: n
// images of 3×32×32, class c a noisy pattern of its own, counts[c] images
// of class c. It needs no download, for smoke tests and benchmarks.
func Synthetic(counts []int, seed uint64) *Dataset {
	classes := len(counts)
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	protos := make([][]float64, classes)
	for c := range protos {
		protos[c] = make([]float64, cifarPixels)
		for i := range protos[c] {
			protos[c][i] = r.Float64()
		}
	}
	d := &Dataset{Name: "synthetic", Classes: classes, Channels: 3, Height: 32, Width: 32,
		Mean: []float64{0.5, 0.5, 0.5}, Std: []float64{0.3, 0.3, 0.3}}
	var buf bytes.Buffer
	for c, n := range counts {
		for k := 0; k < n; k++ {
			for _, p := range protos[c] {
				v := 0.6*p + 0.4*r.Float64()
				buf.WriteByte(uint8(255 * v))
			}
			d.Labels = append(d.Labels, int64(c))
		}
	}
	d.Images = buf.Bytes()
	return d
}
