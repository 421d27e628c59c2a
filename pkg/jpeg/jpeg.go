// Package jpeg decodes a region of an image file to 8-bit RGB, shrinking
// on load where the caller will downscale anyway. JPEGs go through
// libjpeg-turbo (DCT-domain scaling by n/8, rows above the region skipped,
// columns cropped to the blocks it covers); other formats (ImageNet holds a
// PNG named .JPEG) and the pure-Go path use Go's image package.
package jpeg

/*
#cgo LDFLAGS: -ljpeg
#include <stdlib.h>
#include "turbo.h"
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	stdjpeg "image/jpeg"
	_ "image/png" // ImageNet's train set holds one PNG named .JPEG
	"math"
	"unsafe"
)

// Image is an 8-bit RGB image: Pix holds H rows of W pixels of 3 bytes.
type Image struct {
	W, H int
	Pix  []byte
}

// Box is a rectangle in pixels, fractional: [X, X+W) × [Y, Y+H).
type Box struct{ X, Y, W, H float64 }

// Decoder names an implementation.
type Decoder string

const (
	Turbo Decoder = "turbo" // libjpeg-turbo, shrink-on-load and region decode (the default)
	Go    Decoder = "go"    // Go's image/jpeg: whole image, full size
)

// MaxPixels is the largest image, in pixels (width × height), that Size
// and Decode accept by default: 64 megapixels, 8× the largest ImageNet
// image; a header claiming more (a decompression bomb) is refused before
// any pixel memory is allocated. Change it with --max-image-pixels.
const MaxPixels = 64 << 20

// ErrTooLarge reports an image whose header claims more pixels than the limit.
var ErrTooLarge = errors.New("image too large")

// checkPixels refuses w×h beyond max pixels.
func checkPixels(w, h int, max int64) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("header claims %d×%d pixels", w, h)
	}
	if int64(w)*int64(h) > max {
		return fmt.Errorf("%w: header claims %d×%d pixels, more than the limit of %d (--max-image-pixels)", ErrTooLarge, w, h, max)
	}
	return nil
}

// IsJPEG reports whether data starts with a JPEG's SOI marker.
func IsJPEG(data []byte) bool { return len(data) > 2 && data[0] == 0xFF && data[1] == 0xD8 }

// Size returns the width and height of an encoded image, reading only its
// header, and refuses an image of more than maxPixels pixels.
func Size(data []byte, maxPixels int64) (w, h int, err error) {
	if !IsJPEG(data) {
		cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return 0, 0, err
		}
		return cfg.Width, cfg.Height, checkPixels(cfg.Width, cfg.Height, maxPixels)
	}
	var cw, ch C.int
	var msg [C.LWR_JPEG_MSG]C.char
	if C.lwr_jpeg_header((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), &cw, &ch, &msg[0]) != 0 {
		return 0, 0, errors.New(C.GoString(&msg[0]))
	}
	return int(cw), int(ch), checkPixels(int(cw), int(ch), maxPixels)
}

// scaledSize is libjpeg's output size of a dimension at scale n/8.
func scaledSize(size, n int) int { return (size*n + 7) / 8 }

// Decode decodes the part of data (an image of size w×h) that box covers.
// The result may be smaller than the box by a factor n/8: the largest
// shrink that keeps the box at least minW×minH pixels (pass 0, 0 for full
// size: no shrink). It returns the decoded pixels and the box in their
// coordinates. An image of more than maxPixels pixels, a truncated one
// and (libjpeg-turbo) one with corrupt data are errors.
func Decode(dec Decoder, data []byte, w, h int, box Box, minW, minH int, maxPixels int64) (Image, Box, error) {
	if err := checkPixels(w, h, maxPixels); err != nil {
		return Image{}, Box{}, err
	}
	if dec == Go || !IsJPEG(data) {
		return decodeStd(data, box, maxPixels)
	}
	n := 8
	for minW > 0 && minH > 0 && n > 1 && box.W*float64(n-1)/8 >= float64(minW) && box.H*float64(n-1)/8 >= float64(minH) {
		n--
	}
	sw, sh := scaledSize(w, n), scaledSize(h, n)
	fx, fy := float64(sw)/float64(w), float64(sh)/float64(h)
	sb := Box{box.X * fx, box.Y * fy, box.W * fx, box.H * fy}
	// The whole pixels the scaled box touches, plus one on each side for
	// the resampling filter's support at the edges.
	x0 := max(0, int(math.Floor(sb.X))-1)
	y0 := max(0, int(math.Floor(sb.Y))-1)
	x1 := min(sw, int(math.Ceil(sb.X+sb.W))+1)
	y1 := min(sh, int(math.Ceil(sb.Y+sb.H))+1)
	if x1 <= x0 || y1 <= y0 {
		return Image{}, Box{}, fmt.Errorf("box %+v outside the %d×%d image", box, w, h)
	}
	img := Image{W: x1 - x0, H: y1 - y0}
	img.Pix = make([]byte, img.W*img.H*3)
	var ow, oh C.int
	var msg [C.LWR_JPEG_MSG]C.char
	rc := C.lwr_jpeg_decode((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), C.int(n),
		C.int(x0), C.int(y0), C.int(img.W), C.int(img.H), C.longlong(maxPixels),
		(*C.uchar)(unsafe.Pointer(&img.Pix[0])), &ow, &oh, &msg[0])
	if rc != 0 {
		return Image{}, Box{}, errors.New(C.GoString(&msg[0]))
	}
	if int(ow) != img.W || int(oh) != img.H {
		return Image{}, Box{}, fmt.Errorf("decoded %d×%d of a %d×%d region (header says %d×%d)", ow, oh, img.W, img.H, w, h)
	}
	return img, Box{sb.X - float64(x0), sb.Y - float64(y0), sb.W, sb.H}, nil
}

// decodeStd decodes the whole image with Go's decoders and converts the
// rows and columns box touches to RGB.
func decodeStd(data []byte, box Box, maxPixels int64) (Image, Box, error) {
	// The header first: Go's decoders allocate what it claims.
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return Image{}, Box{}, err
	}
	if err := checkPixels(cfg.Width, cfg.Height, maxPixels); err != nil {
		return Image{}, Box{}, err
	}
	var src image.Image
	if IsJPEG(data) {
		src, err = stdjpeg.Decode(bytes.NewReader(data))
	} else {
		src, _, err = image.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return Image{}, Box{}, err
	}
	b := src.Bounds()
	x0 := max(0, int(math.Floor(box.X))-1)
	y0 := max(0, int(math.Floor(box.Y))-1)
	x1 := min(b.Dx(), int(math.Ceil(box.X+box.W))+1)
	y1 := min(b.Dy(), int(math.Ceil(box.Y+box.H))+1)
	if x1 <= x0 || y1 <= y0 {
		return Image{}, Box{}, fmt.Errorf("box %+v outside the %d×%d image", box, b.Dx(), b.Dy())
	}
	img := Image{W: x1 - x0, H: y1 - y0}
	img.Pix = make([]byte, img.W*img.H*3)
	for y := y0; y < y1; y++ {
		row := img.Pix[(y-y0)*img.W*3:]
		switch s := src.(type) {
		case *image.YCbCr:
			for x := x0; x < x1; x++ {
				yi, ci := s.YOffset(b.Min.X+x, b.Min.Y+y), s.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
				row[(x-x0)*3], row[(x-x0)*3+1], row[(x-x0)*3+2] = r, g, bl
			}
		case *image.Gray:
			for x := x0; x < x1; x++ {
				v := s.Pix[s.PixOffset(b.Min.X+x, b.Min.Y+y)]
				row[(x-x0)*3], row[(x-x0)*3+1], row[(x-x0)*3+2] = v, v, v
			}
		default:
			for x := x0; x < x1; x++ {
				c := color.RGBAModel.Convert(src.At(b.Min.X+x, b.Min.Y+y)).(color.RGBA)
				row[(x-x0)*3], row[(x-x0)*3+1], row[(x-x0)*3+2] = c.R, c.G, c.B
			}
		}
	}
	return img, Box{box.X - float64(x0), box.Y - float64(y0), box.W, box.H}, nil
}
