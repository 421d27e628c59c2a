// Command decode measures the ImageNet training transform on one core:
// read a JPEG (from the page cache), RandomResizedCrop(224), flip,
// optionally ColorJitter(0.4, 0.4, 0.4), into a uint8 CHW image; or the
// test transform (Resize(256) + CenterCrop(224)). bench/decode.sh runs it
// next to torchvision on the same files.
package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/pflag"

	"github.com/lwr-go/lwr/pkg/data"
	"github.com/lwr-go/lwr/pkg/imagenet"
	"github.com/lwr-go/lwr/pkg/jpeg"
	"github.com/lwr-go/lwr/pkg/transform"
)

func main() {
	root := pflag.String("root", "", "folder the list's paths are relative to")
	list := pflag.String("list", "", "list file: \"path label\" lines")
	decoder := pflag.String("decoder", "turbo", "turbo (libjpeg-turbo) or go (image/jpeg)")
	mode := pflag.String("mode", "train", "train (RandomResizedCrop + flip) or test (Resize 256 + CenterCrop 224)")
	jitter := pflag.Bool("jitter", false, "add ColorJitter(0.4, 0.4, 0.4) to the train transform")
	passes := pflag.Int("passes", 3, "passes over the files (the first warms the page cache and is not timed)")
	workers := pflag.Int("workers", 0, "instead: the whole pipeline (imagenet.Loader, batches of 256, train transform + jitter) on this many goroutines")
	pflag.Parse()
	var err error
	if *workers > 0 {
		err = pipeline(*root, *list, *workers, *passes)
	} else {
		err = run(*root, *list, jpeg.Decoder(*decoder), *mode, *jitter, *passes)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "decode:", err)
		os.Exit(1)
	}
}

func run(root, list string, dec jpeg.Decoder, mode string, jitter bool, passes int) error {
	runtime.GOMAXPROCS(1)
	entries, err := data.ReadList(list, 0)
	if err != nil {
		return err
	}
	files := make([][]byte, len(entries))
	r := rand.New(rand.NewPCG(1, 2))
	var z transform.Resizer
	const side = 224
	buf := make([]float32, 3*side*side)
	out := make([]byte, 3*side*side)
	var elapsed time.Duration
	for pass := 0; pass < passes; pass++ {
		start := time.Now()
		for i, e := range entries {
			// Reading is part of the work, as it is for PIL's Image.open.
			b, err := os.ReadFile(filepath.Join(root, e.Item))
			if err != nil {
				return err
			}
			files[i] = b
			w, h, err := jpeg.Size(b, jpeg.MaxPixels)
			if err != nil {
				return fmt.Errorf("%s: %w", e.Item, err)
			}
			box := transform.CenterCrop(w, h, 256, side)
			flip := false
			if mode == "train" {
				box = transform.RandomResizedCrop(w, h, r)
				flip = r.IntN(2) == 1
			}
			img, ib, err := jpeg.Decode(dec, b, w, h, box, side, side, jpeg.MaxPixels)
			if err != nil {
				return fmt.Errorf("%s: %w", e.Item, err)
			}
			z.Resize(img, ib, side, side, flip, buf)
			if jitter && mode == "train" {
				transform.Jitter{Brightness: 0.4, Contrast: 0.4, Saturation: 0.4}.Apply(buf, side*side, r)
			}
			transform.ToBytes(out, buf)
		}
		if pass > 0 {
			elapsed += time.Since(start)
		}
	}
	n := len(entries) * (passes - 1)
	fmt.Printf("%.1f images/s per core (%d images, decoder %s, %s%s)\n", float64(n)/elapsed.Seconds(), n, dec, mode,
		map[bool]string{true: " + jitter", false: ""}[jitter])
	return nil
}

// pipeline measures imagenet.Loader: the training transform with jitter,
// batches of 256 in order, on workers goroutines (and as many cores).
func pipeline(root, list string, workers, passes int) error {
	runtime.GOMAXPROCS(workers)
	d, err := imagenet.Open(root, list, 1000, false)
	if err != nil {
		return err
	}
	l := &imagenet.Loader{Data: d, Size: 224, Train: true, Decoder: jpeg.Turbo, Workers: workers, Prefetch: 2,
		Jitter: transform.Jitter{Brightness: 0.4, Contrast: 0.4, Saturation: 0.4}}
	order := make([]int64, d.Len())
	for i := range order {
		order[i] = int64(i)
	}
	var elapsed time.Duration
	for pass := 0; pass < passes; pass++ {
		start := time.Now()
		for b := range l.Epoch(context.Background(), order, 256, 1, pass, 0) {
			if b.Err != nil {
				return b.Err
			}
			b.Release()
		}
		if pass > 0 {
			elapsed += time.Since(start)
		}
	}
	n := d.Len() * (passes - 1)
	fmt.Printf("%.1f images/s (%d images, pipeline, %d workers, train + jitter)\n", float64(n)/elapsed.Seconds(), n, workers)
	return nil
}
