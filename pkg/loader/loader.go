// Package loader makes training and evaluation batches of a data set
// (pkg/data) as tensors on the training device.
package loader

import (
	"fmt"
	"math/rand/v2"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/data"
	"github.com/lwr-go/lwr/pkg/libtorch"
)

// Loader holds a data set on the training device as uint8 [N,C,H,W] and
// makes float batches from it: scaled to [0,1], optionally augmented
// (random crop with zero padding, horizontal flip, per sample), and
// normalised per channel. The data moves to the device once.
type Loader struct {
	Data   *data.Dataset
	dev    gotch.Device
	images *ts.Tensor // uint8 [N,C,H,W]
	labels *ts.Tensor // int64 [N]
	mean   *ts.Tensor // float32 [1,C,1,1]
	std    *ts.Tensor // float32 [1,C,1,1]
}

// New copies d to dev.
func New(d *data.Dataset, dev gotch.Device) (*Loader, error) {
	if d.Len() == 0 {
		return nil, fmt.Errorf("%s: no images", d.Name)
	}
	if len(d.Images) != d.Len()*d.ImageSize() {
		return nil, fmt.Errorf("%s: %d bytes of pixels for %d images of %d bytes", d.Name, len(d.Images), d.Len(), d.ImageSize())
	}
	shape := []int64{int64(d.Len()), int64(d.Channels), int64(d.Height), int64(d.Width)}
	img, err := ts.OfSlice(d.Images)
	if err != nil {
		return nil, err
	}
	stat := func(v []float64) *ts.Tensor {
		return ts.MustOfSlice(v).MustTotype(gotch.DefaultDType, true).MustView([]int64{1, int64(len(v)), 1, 1}, true).MustTo(dev, true)
	}
	return &Loader{
		Data:   d,
		dev:    dev,
		images: img.MustView(shape, true).MustTo(dev, true),
		labels: ts.MustOfSlice(d.Labels).MustTo(dev, true),
		mean:   stat(d.Mean),
		std:    stat(d.Std),
	}, nil
}

// Augment says how training batches are augmented; its random draws come
// from Rand, so that a run is reproducible from its seed.
type Augment struct {
	Pad  int  // random crop of the original size from the image zero-padded by Pad on each side (4); 0: none
	Flip bool // random horizontal flip with probability 1/2
	Rand *rand.Rand
}

// Batch returns images [B,C,H,W] float32 and labels [B] int64 for the
// images at idx, augmented when aug is not nil. The caller frees both.
func (l *Loader) Batch(idx []int64, aug *Augment) (x, y *ts.Tensor) {
	var s libtorch.Scope
	defer s.Free()
	index := s.Keep(ts.MustOfSlice(idx).MustTo(l.dev, true))
	y = l.labels.MustIndexSelect(0, index, false)
	raw := s.Keep(l.images.MustIndexSelect(0, index, false))
	img := s.Keep(raw.MustTotype(gotch.DefaultDType, false).MustDivScalar(ts.FloatScalar(255), true))
	if aug != nil && aug.Pad > 0 {
		img = s.Keep(l.crop(&s, img, aug.Pad, aug.Rand))
	}
	if aug != nil && aug.Flip {
		img = s.Keep(l.flip(&s, img, aug.Rand))
	}
	centred := s.Keep(img.MustSub(l.mean, false))
	x = centred.MustDiv(l.std, false)
	return x, y
}

// crop takes a random H×W window of each image zero-padded by pad, with
// two gathers: rows, then columns, at per-sample offsets in [0, 2·pad].
func (l *Loader) crop(s *libtorch.Scope, img *ts.Tensor, pad int, r *rand.Rand) *ts.Tensor {
	size := img.MustSize()
	b, c, h, w := size[0], size[1], size[2], size[3]
	p := int64(pad)
	padded := s.Keep(img.MustConstantPadNd([]int64{p, p, p, p}, false)) // [B,C,H+2p,W+2p]
	rows := make([]int64, 0, b*h)
	cols := make([]int64, 0, b*w)
	for i := int64(0); i < b; i++ {
		dy, dx := int64(r.IntN(2*pad+1)), int64(r.IntN(2*pad+1))
		for k := int64(0); k < h; k++ {
			rows = append(rows, dy+k)
		}
		for k := int64(0); k < w; k++ {
			cols = append(cols, dx+k)
		}
	}
	rowIdx := s.Keep(ts.MustOfSlice(rows).MustView([]int64{b, 1, h, 1}, true).MustTo(l.dev, true).
		MustExpand([]int64{b, c, h, w + 2*p}, false, true))
	colIdx := s.Keep(ts.MustOfSlice(cols).MustView([]int64{b, 1, 1, w}, true).MustTo(l.dev, true).
		MustExpand([]int64{b, c, h, w}, false, true))
	byRow := s.Keep(padded.MustGather(2, rowIdx, false, false))
	return byRow.MustGather(3, colIdx, false, false)
}

// flip mirrors each image left-right with probability 1/2.
func (l *Loader) flip(s *libtorch.Scope, img *ts.Tensor, r *rand.Rand) *ts.Tensor {
	b := img.MustSize()[0]
	mask := make([]bool, b)
	for i := range mask {
		mask[i] = r.IntN(2) == 1
	}
	m := s.Keep(ts.MustOfSlice(mask).MustView([]int64{b, 1, 1, 1}, true).MustTo(l.dev, true))
	flipped := s.Keep(img.MustFlip([]int64{3}, false))
	return flipped.MustWhereSelf(m, img, false)
}
