package transform

/*
#cgo CFLAGS: -O3
#include "kernels.h"
*/
import "C"

import (
	"fmt"
	"math"
	"slices"

	"github.com/lwr-go/lwr/pkg/jpeg"
)

// Resizer resamples a box of an RGB image to a fixed size with PIL's
// bilinear filter (a triangle widened by the shrink factor: antialiased),
// horizontally then vertically. It keeps its buffers between calls; one
// per goroutine.
type Resizer struct {
	tmp          []float32 // rows × outW × 3, after the horizontal pass
	xw, yw       []float32 // filter weights, per output column / row
	xlo, ylo     []int32   // first input pixel per output column / row
	xtaps, ytaps int
}

// coeffs computes PIL's bilinear coefficients for out samples of the
// interval [start, start+size) of an input of n pixels, reusing w and lo.
func coeffs(w []float32, lo []int32, start, size float64, n, out int) ([]float32, []int32, int) {
	scale := size / float64(out)
	fscale := max(scale, 1)
	support := fscale // the triangle's support is 1
	taps := int(math.Ceil(support))*2 + 1
	w = slices.Grow(w[:0], out*taps)[:out*taps]
	lo = slices.Grow(lo[:0], out)[:out]
	clear(w)
	for i := range out {
		center := start + (float64(i)+0.5)*scale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), n, xmin+taps)
		lo[i] = int32(xmin)
		var sum float64
		ws := w[i*taps : i*taps+xmax-xmin]
		for k := range ws {
			v := max(0, 1-math.Abs((float64(xmin+k)-center+0.5)/fscale))
			ws[k] = float32(v)
			sum += v
		}
		if sum > 0 {
			for k := range ws {
				ws[k] = float32(float64(ws[k]) / sum)
			}
		}
	}
	return w, lo, taps
}

// Resize writes the box of src, resampled to outW×outH, to dst as planes
// (CHW, 3·outH·outW floats in [0, 255]), mirrored left-right when flip.
func (z *Resizer) Resize(src jpeg.Image, box jpeg.Box, outW, outH int, flip bool, dst []float32) {
	z.xw, z.xlo, z.xtaps = coeffs(z.xw, z.xlo, box.X, box.W, src.W, outW)
	z.yw, z.ylo, z.ytaps = coeffs(z.yw, z.ylo, box.Y, box.H, src.H, outH)
	if len(dst) < 3*outW*outH || len(src.Pix) < 3*src.W*src.H {
		panic(fmt.Sprintf("transform: %d floats for %d×%d, %d bytes for a %d×%d image", len(dst), outW, outH, len(src.Pix), src.W, src.H))
	}
	// The input rows the vertical pass reads.
	r0 := int(z.ylo[0])
	r1 := min(src.H, int(z.ylo[outH-1])+z.ytaps)
	rows := r1 - r0
	if cap(z.tmp) < rows*outW*3 {
		z.tmp = make([]float32, rows*outW*3)
	}
	tmp := z.tmp[:rows*outW*3]
	C.lwr_resize_h((*C.uint8_t)(&src.Pix[0]), C.int(src.W), C.int(r0), C.int(rows),
		(*C.float)(&z.xw[0]), (*C.int)(&z.xlo[0]), C.int(z.xtaps), C.int(outW), C.int(b2i(flip)), (*C.float)(&tmp[0]))
	C.lwr_resize_v((*C.float)(&tmp[0]), C.int(rows), (*C.float)(&z.yw[0]), (*C.int)(&z.ylo[0]), C.int(r0),
		C.int(z.ytaps), C.int(outW), C.int(outH), (*C.float)(&dst[0]))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ToBytes rounds float pixels in [0, 255] to bytes.
func ToBytes(dst []byte, src []float32) {
	if len(dst) < len(src) {
		panic("transform: ToBytes: destination too short")
	}
	if len(src) > 0 {
		C.lwr_to_bytes((*C.uint8_t)(&dst[0]), (*C.float)(&src[0]), C.int(len(src)))
	}
}
