package imagenet

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/lwr-go/lwr/pkg/jpeg"
	"github.com/lwr-go/lwr/pkg/transform"
)

// Loader decodes a Dataset's images into batches of uint8 [B,3,S,S]
// (RGB planes) on worker goroutines, a bounded number of batches ahead.
type Loader struct {
	Data     *Dataset
	Size     int  // output side S (224)
	Train    bool // RandomResizedCrop + flip + Jitter; else Resize(S·256/224) + CenterCrop(S)
	Jitter   transform.Jitter
	Decoder  jpeg.Decoder
	Workers  int // decoding goroutines (0: one per core)
	Prefetch int // batches decoded ahead of the consumer (0: 2)
	// MaxPixels and MaxBytes bound what one image may claim (width ×
	// height) and weigh (file size): the files are the user's, untrusted.
	// 0: jpeg.MaxPixels, MaxImageBytes.
	MaxPixels int64
	MaxBytes  int64
	// NewBuffer allocates a batch buffer of n bytes; nil: Go memory. The
	// trainer passes the memory of (pinned, for CUDA) libtorch tensors, so
	// that workers decode straight into what is copied to the device.
	NewBuffer func(n int) []byte

	pool      chan []byte // batch buffers, kept from one epoch to the next
	poolBytes int         // size of each
}

// Batch is a decoded batch. Release it when its pixels have been copied.
type Batch struct {
	Images []byte  // uint8 [B,3,S,S]
	Labels []int64 // [B]
	Err    error   // the first image that failed, named
	pool   chan []byte
}

// Release hands the batch's buffer back to the loader.
func (b *Batch) Release() {
	if b.pool != nil && b.Images != nil {
		b.pool <- b.Images[:cap(b.Images)]
		b.Images = nil
	}
}

type job struct {
	batch *pending
	slot  int
	index int64 // into Data
	k     uint64
}

type pending struct {
	b  *Batch
	wg sync.WaitGroup
	mu sync.Mutex
}

// Epoch decodes the images order names, in batches of batch, and sends
// them in order. Image k of the epoch (counting from 0) draws its crop,
// flip and jitter from a generator of (seed, epoch, k): the batches are
// the same whatever the number of workers, and skip leaves the first skip
// batches out without changing the others. The channel closes after the
// last batch, after a batch with Err, or when ctx is done; the consumer
// releases every batch it receives. One epoch at a time per Loader.
func (l *Loader) Epoch(ctx context.Context, order []int64, batch int, seed uint64, epoch, skip int) <-chan *Batch {
	workers := l.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	prefetch := l.Prefetch
	if prefetch <= 0 {
		prefetch = 2
	}
	plane := 3 * l.Size * l.Size
	if l.pool == nil || l.poolBytes != batch*plane {
		l.pool, l.poolBytes = make(chan []byte, prefetch+1), batch*plane
		for range prefetch + 1 {
			if l.NewBuffer != nil {
				l.pool <- l.NewBuffer(batch * plane)
			} else {
				l.pool <- make([]byte, batch*plane)
			}
		}
	}
	pool := l.pool
	out := make(chan *Batch)
	jobs := make(chan job, batch)
	queue := make(chan *pending, prefetch)
	ctx, cancel := context.WithCancel(ctx)

	var workersDone sync.WaitGroup
	for range workers {
		workersDone.Add(1)
		go func() {
			defer workersDone.Done()
			w := newWorker(l)
			for j := range jobs {
				if ctx.Err() == nil {
					err := w.image(j.index, seed, uint64(epoch), j.k, j.batch.b.Images[j.slot*plane:(j.slot+1)*plane])
					if err != nil {
						j.batch.mu.Lock()
						if j.batch.b.Err == nil {
							j.batch.b.Err = err
						}
						j.batch.mu.Unlock()
					}
				}
				j.batch.wg.Done()
			}
		}()
	}
	// Dispatch: a free buffer, then the batch's images to the workers.
	go func() {
		defer close(queue)
		defer close(jobs)
		for lo := skip * batch; lo < len(order); lo += batch {
			idx := order[lo:min(lo+batch, len(order))]
			var buf []byte
			select {
			case buf = <-pool:
			case <-ctx.Done():
				return
			}
			p := &pending{b: &Batch{Images: buf[:len(idx)*plane], Labels: make([]int64, len(idx)), pool: pool}}
			p.wg.Add(len(idx))
			for i, n := range idx {
				p.b.Labels[i] = l.Data.Labels[n]
			}
			select {
			case queue <- p:
			case <-ctx.Done():
				pool <- buf
				return
			}
			for i, n := range idx {
				jobs <- job{batch: p, slot: i, index: n, k: uint64(lo + i)}
			}
		}
	}()
	// Collect in order.
	go func() {
		defer func() {
			cancel()
			for p := range queue { // let the dispatcher finish; keep the buffers
				p.wg.Wait()
				p.b.Release()
			}
			workersDone.Wait()
			close(out)
		}()
		for p := range queue {
			p.wg.Wait()
			select {
			case out <- p.b:
			case <-ctx.Done():
				p.b.Release()
				return
			}
			if p.b.Err != nil {
				return
			}
		}
	}()
	return out
}

// worker holds one goroutine's buffers.
type worker struct {
	l   *Loader
	z   transform.Resizer
	buf []float32
}

func newWorker(l *Loader) *worker {
	return &worker{l: l, buf: make([]float32, 3*l.Size*l.Size)}
}

// image decodes Data's image n into dst (uint8 [3,S,S]).
func (w *worker) image(n int64, seed, epoch, k uint64, dst []byte) error {
	l := w.l
	path := filepath.Join(l.Data.Root, l.Data.Paths[n])
	b, err := ReadImageFile(path, cmp.Or(l.MaxBytes, MaxImageBytes))
	if err != nil {
		return err
	}
	maxPixels := cmp.Or(l.MaxPixels, jpeg.MaxPixels)
	iw, ih, err := jpeg.Size(b, maxPixels)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	s := l.Size
	var r *rand.Rand
	box := transform.CenterCrop(iw, ih, s*256/224, s)
	flip := false
	if l.Train {
		r = rand.New(rand.NewPCG(seed, epoch<<32|k))
		box = transform.RandomResizedCrop(iw, ih, r)
		flip = r.IntN(2) == 1
	}
	img, ib, err := jpeg.Decode(l.Decoder, b, iw, ih, box, s, s, maxPixels)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	w.z.Resize(img, ib, s, s, flip, w.buf)
	if l.Train {
		l.Jitter.Apply(w.buf, s*s, r)
	}
	transform.ToBytes(dst, w.buf)
	return nil
}
