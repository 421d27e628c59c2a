package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/data"
	"github.com/lwr-go/lwr/pkg/imagenet"
	"github.com/lwr-go/lwr/pkg/jpeg"
	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/loader"
	"github.com/lwr-go/lwr/pkg/resnet"
	"github.com/lwr-go/lwr/pkg/transform"
)

// source is a data set the trainer reads batches of from: images float32
// [B,C,H,W] normalised on the training device, labels int64 [B].
type source interface {
	Labels() []int64
	Counts() []int64 // images per class
	Classes() int
	Channels() int
	// Batches returns the batches of order, of size batch, after the first
	// skip: augmented (drawing from rng, or from (seed, epoch)) when
	// train. next returns nil tensors after the last, or when ctx is done;
	// stop frees the rest.
	Batches(ctx context.Context, order []int64, batch int, train bool, rng *rand.Rand, seed uint64, epoch, skip int) (next func() (x, y *ts.Tensor, err error), stop func())
}

// memorySource is a data set held on the device (CIFAR, Fashion-MNIST,
// synthetic), augmented with random crop and flip in batches.
type memorySource struct {
	d   *data.Dataset
	l   *loader.Loader
	pad int
}

func (s *memorySource) Labels() []int64 { return s.d.Labels }
func (s *memorySource) Counts() []int64 { return s.d.Counts() }
func (s *memorySource) Classes() int    { return s.d.Classes }
func (s *memorySource) Channels() int   { return s.d.Channels }

func (s *memorySource) Batches(_ context.Context, order []int64, batch int, train bool, rng *rand.Rand, _ uint64, _, skip int) (func() (*ts.Tensor, *ts.Tensor, error), func()) {
	var aug *loader.Augment
	if train {
		aug = &loader.Augment{Pad: s.pad, Flip: true, Rand: rng}
	}
	b := 0
	next := func() (*ts.Tensor, *ts.Tensor, error) {
		for ; b*batch < len(order); b++ {
			idx := order[b*batch : min((b+1)*batch, len(order))]
			x, y := s.l.Batch(idx, aug) // draws from rng even for skipped batches, to stay in step
			if b < skip {
				x.MustDrop()
				y.MustDrop()
				continue
			}
			b++
			return x, y, nil
		}
		return nil, nil, nil
	}
	return next, func() {}
}

// imageNetMean and imageNetStd normalise ImageNet's RGB values in [0,1].
var imageNetMean, imageNetStd = []float64{0.485, 0.456, 0.406}, []float64{0.229, 0.224, 0.225}

// jpegSource is a data set of JPEG files decoded on worker goroutines
// straight into the memory of libtorch tensors (pinned for CUDA).
type jpegSource struct {
	d         *imagenet.Dataset
	train     *imagenet.Loader // the training transform
	test      *imagenet.Loader // Resize + CenterCrop
	dev       gotch.Device
	mean, std *ts.Tensor // float32 [1,3,1,1] on dev
	mu        sync.Mutex
	buffers   map[*byte]*ts.Tensor // uint8 tensors by their memory
}

func newJPEGSource(d *imagenet.Dataset, c Config, dev gotch.Device) *jpegSource {
	j := transform.Jitter{Brightness: c.Jitter, Contrast: c.Jitter, Saturation: c.Jitter}
	s := &jpegSource{d: d, dev: dev, buffers: map[*byte]*ts.Tensor{}}
	base := imagenet.Loader{Data: d, Size: c.ImageSize, Decoder: jpeg.Decoder(c.Decoder), Workers: c.Workers, Prefetch: c.Prefetch,
		MaxPixels: c.MaxPixels, MaxBytes: c.MaxBytes, NewBuffer: s.newBuffer}
	train, test := base, base
	train.Train, train.Jitter = true, j
	s.train, s.test = &train, &test
	stat := func(v []float64) *ts.Tensor {
		return ts.MustOfSlice(v).MustTotype(gotch.DefaultDType, true).MustView([]int64{1, 3, 1, 1}, true).MustTo(dev, true)
	}
	s.mean, s.std = stat(imageNetMean), stat(imageNetStd)
	return s
}

// newBuffer is a batch buffer in a libtorch tensor's memory, page-locked
// when training on CUDA so that the copy to the device runs at full speed.
func (s *jpegSource) newBuffer(n int) []byte {
	t := ts.MustEmpty([]int64{int64(n)}, gotch.Uint8, gotch.CPU)
	if s.dev.IsCuda() {
		t = t.MustPinMemory(s.dev, true)
	}
	b := unsafe.Slice((*byte)(t.MustDataPtr()), n)
	s.mu.Lock()
	s.buffers[&b[0]] = t
	s.mu.Unlock()
	return b
}

func (s *jpegSource) Labels() []int64 { return s.d.Labels }
func (s *jpegSource) Counts() []int64 { return s.d.Counts() }
func (s *jpegSource) Classes() int    { return s.d.Classes }
func (s *jpegSource) Channels() int   { return 3 }

func (s *jpegSource) Batches(ctx context.Context, order []int64, batch int, train bool, _ *rand.Rand, seed uint64, epoch, skip int) (func() (*ts.Tensor, *ts.Tensor, error), func()) {
	l := s.test
	if train {
		l = s.train
	}
	ctx, cancel := context.WithCancel(ctx)
	ch := l.Epoch(ctx, order, batch, seed, epoch, skip)
	next := func() (*ts.Tensor, *ts.Tensor, error) {
		b, ok := <-ch
		if !ok {
			if err := ctx.Err(); err != nil && err != context.Canceled {
				return nil, nil, err
			}
			return nil, nil, nil
		}
		defer b.Release()
		if b.Err != nil {
			return nil, nil, b.Err
		}
		n := int64(len(b.Labels))
		side := int64(l.Size)
		s.mu.Lock()
		buf := s.buffers[&b.Images[0]]
		s.mu.Unlock()
		var sc libtorch.Scope
		defer sc.Free()
		// The batch's bytes, as a view of the buffer's tensor; on CUDA a
		// synchronous copy, done before the buffer goes back to the workers.
		raw := sc.Keep(buf.MustNarrow(0, 0, int64(len(b.Images)), false).MustView([]int64{n, 3, side, side}, true))
		if s.dev.IsCuda() {
			raw = sc.Keep(raw.MustToDevice(s.dev, gotch.Uint8, false, false, false))
		}
		img := sc.Keep(raw.MustTotype(gotch.DefaultDType, false).MustDivScalar(ts.FloatScalar(255), true)) // a new tensor: the buffer is free
		centred := sc.Keep(img.MustSub(s.mean, false))
		return centred.MustDiv(s.std, false), ts.MustOfSlice(b.Labels).MustTo(s.dev, true), nil
	}
	stop := func() {
		cancel()
		for b := range ch {
			b.Release()
		}
	}
	return next, stop
}

// imageNetData opens ImageNet-LT's training and test lists.
func imageNetData(c Config) (train, test *imagenet.Dataset, err error) {
	root := c.DataDir
	if root == "" {
		root = "data/imagenet"
	}
	lists := c.ListDir
	if lists == "" {
		lists = root
	}
	trainList := filepath.Join(lists, imagenet.Split("train"))
	if _, err := os.Stat(trainList); err != nil {
		return nil, nil, fmt.Errorf("%s: not found (scripts/download_imagenet_lt.sh %s fetches the split files; --list-dir points at them)", trainList, lists)
	}
	if train, err = imagenet.Open(root, trainList, c.Classes, c.SkipMissing); err != nil {
		return nil, nil, err
	}
	if test, err = imagenet.Open(root, filepath.Join(lists, imagenet.Split(c.TestSplit)), c.Classes, c.SkipMissing); err != nil {
		return nil, nil, err
	}
	if c.CheckImages {
		for _, d := range []*imagenet.Dataset{train, test} {
			dropped, err := d.Check(c.MaxPixels, c.MaxBytes, c.Workers, c.SkipCorrupt)
			if err != nil {
				return nil, nil, err
			}
			if len(dropped) > 0 {
				warnf("%s: %d images fail the check and are left out (--skip-corrupt); the first: %s", d.Name, len(dropped), dropped[0])
			}
		}
	}
	return train, test, nil
}

// sources opens the training and test data of c on dev, and for a subset
// of a larger training set (CIFAR-LT, Fashion-MNIST-LT) its indices.
func sources(c Config, dev gotch.Device) (train, test source, subset []int64, err error) {
	if c.Dataset == "imagenet-lt" {
		tr, te, err := imageNetData(c)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, d := range []*imagenet.Dataset{tr, te} {
			if len(d.Missing) > 0 {
				fmt.Fprintf(os.Stderr, "%s: %d listed images are missing and left out (--skip-missing), the first %s\n",
					d.Name, len(d.Missing), filepath.Join(d.Root, d.Missing[0]))
			}
		}
		return newJPEGSource(tr, c, dev), newJPEGSource(te, c, dev), nil, nil
	}
	trainSet, testSet, subset, err := data.Open(c.Dataset, c.DataDir, c.ImbalanceFactor, c.SubsetSeed, c.Seed)
	if err != nil {
		return nil, nil, nil, err
	}
	trainLoader, err := loader.New(trainSet, dev)
	if err != nil {
		return nil, nil, nil, err
	}
	testLoader, err := loader.New(testSet, dev)
	if err != nil {
		return nil, nil, nil, err
	}
	return &memorySource{d: trainSet, l: trainLoader, pad: 4}, &memorySource{d: testSet, l: testLoader, pad: 4}, subset, nil
}

// newModel builds c.Model for the classes and channels of s.
func newModel(p *nn.Path, c Config, s source) (resnet.Net, error) {
	o := resnet.Options{Classes: int64(s.Classes()), InChannels: int64(s.Channels()), NormedClassifier: isLDAM(c.Loss.Name),
		LibtorchBatchNorm: c.FusedBN == FusedOff, Blocked: c.memoryFormat(p.Device()) == libtorch.Blocked,
		ConvAlgorithm: libtorch.ConvAlgorithm(c.ConvAlgorithm)}
	if c.SyncBN && c.Dist != nil && c.Dist.Distributed() {
		g := c.Dist
		o.SyncBatchNorm = func(x, w, b, mean, variance *ts.Tensor, momentum, eps float64) *ts.Tensor {
			y, err := g.SyncBatchNorm(x, w, b, mean, variance, momentum, eps)
			if err != nil {
				libtorch.Raise(err) // Catch returns it as it is: a failed collective
			}
			return y
		}
	}
	switch c.Model {
	case "resnet32":
		return resnet.ResNet32(p, o)
	case "resnet50":
		return resnet.ResNet50(p, o)
	case "resnext50":
		return resnet.ResNeXt50(p, o)
	}
	return nil, fmt.Errorf("--model %q: want resnet32, resnet50 or resnext50", c.Model)
}
