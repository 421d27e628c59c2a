// Package transform holds the ImageNet image transforms: where to crop
// (torchvision's RandomResizedCrop and Resize + CenterCrop, in the
// original image's pixels, so that a decoder can shrink on load), the
// resize itself (bilinear with antialiasing, as PIL does it), and
// ColorJitter.
package transform

/*
#cgo CFLAGS: -O3
#include "kernels.h"
*/
import "C"

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/lwr-go/lwr/pkg/jpeg"
)

// RandomResizedCrop returns torchvision's RandomResizedCrop box for an
// image of w×h pixels: area scale in [0.08, 1] of the image, aspect ratio
// log-uniform in [3/4, 4/3], ten tries, then the central crop.
func RandomResizedCrop(w, h int, r *rand.Rand) jpeg.Box {
	const minScale, maxScale = 0.08, 1.0
	lo, hi := math.Log(3.0/4), math.Log(4.0/3)
	area := float64(w * h)
	for range 10 {
		target := area * (minScale + (maxScale-minScale)*r.Float64())
		aspect := math.Exp(lo + (hi-lo)*r.Float64())
		cw := int(math.RoundToEven(math.Sqrt(target * aspect)))
		ch := int(math.RoundToEven(math.Sqrt(target / aspect)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			y := r.IntN(h - ch + 1)
			x := r.IntN(w - cw + 1)
			return jpeg.Box{X: float64(x), Y: float64(y), W: float64(cw), H: float64(ch)}
		}
	}
	ratio := float64(w) / float64(h)
	cw, ch := w, h
	switch {
	case ratio < 3.0/4:
		ch = int(math.RoundToEven(float64(w) / (3.0 / 4)))
	case ratio > 4.0/3:
		cw = int(math.RoundToEven(float64(h) * 4.0 / 3))
	}
	return jpeg.Box{X: float64((w - cw) / 2), Y: float64((h - ch) / 2), W: float64(cw), H: float64(ch)}
}

// CenterCrop returns the box of Resize(resize) then CenterCrop(crop) (the
// test transform: 256 then 224) in the pixels of a w×h image: the shorter
// side scaled to resize, the central crop×crop of that.
func CenterCrop(w, h, resize, crop int) jpeg.Box {
	ow, oh := resize, resize
	if w <= h {
		oh = int(float64(resize) * float64(h) / float64(w))
	} else {
		ow = int(float64(resize) * float64(w) / float64(h))
	}
	sx, sy := float64(w)/float64(ow), float64(h)/float64(oh)
	top := math.RoundToEven(float64(oh-crop) / 2)
	left := math.RoundToEven(float64(ow-crop) / 2)
	return jpeg.Box{X: left * sx, Y: top * sy, W: float64(crop) * sx, H: float64(crop) * sy}
}

// Jitter is ColorJitter(brightness, contrast, saturation) with hue 0:
// each factor uniform in [max(0, 1-v), 1+v], applied in a random order.
type Jitter struct{ Brightness, Contrast, Saturation float64 }

// Apply jitters a CHW float image (values in [0, 255], planes of n pixels)
// in place, clamping after each step as PIL's enhancers do.
func (j Jitter) Apply(pix []float32, n int, r *rand.Rand) {
	if len(pix) < 3*n {
		panic(fmt.Sprintf("transform: Jitter: %d floats for %d pixels", len(pix), n))
	}
	ops := [3]C.int{0, 1, 2}
	for i := 2; i > 0; i-- { // a random order
		k := r.IntN(i + 1)
		ops[i], ops[k] = ops[k], ops[i]
	}
	var factors [3]C.float
	for i, op := range ops {
		v := [3]float64{j.Brightness, j.Contrast, j.Saturation}[op]
		factors[i] = 1
		if v > 0 {
			factors[i] = C.float(max(0, 1-v) + (1+v-max(0, 1-v))*r.Float64())
		}
	}
	C.lwr_jitter((*C.float)(&pix[0]), C.int(n), &ops[0], &factors[0])
}
