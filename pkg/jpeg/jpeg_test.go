package jpeg

import (
	"bytes"
	"image"
	"image/color"
	stdjpeg "image/jpeg"
	"image/png"
	"math"
	"os"
	"strings"
	"testing"
)

// picture is a smooth test picture as RGB bytes.
func picture(w, h int) []byte {
	pix := make([]byte, 0, w*h*3)
	for y := range h {
		for x := range w {
			pix = append(pix, uint8(128+100*math.Sin(float64(x)/9)), uint8(128+100*math.Cos(float64(y)/13)), uint8((x+2*y)%256))
		}
	}
	return pix
}

// photo encodes picture(w, h) as a JPEG (4:2:0, like most of ImageNet) or
// a PNG.
func photo(t *testing.T, w, h int, asPNG bool) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	pix := picture(w, h)
	for i := range w * h {
		img.Set(i%w, i/w, color.RGBA{pix[3*i], pix[3*i+1], pix[3*i+2], 255})
	}
	var buf bytes.Buffer
	var err error
	if asPNG {
		err = png.Encode(&buf, img)
	} else {
		err = stdjpeg.Encode(&buf, img, &stdjpeg.Options{Quality: 92})
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func meanAbsDiff(a, b []byte) float64 {
	var s float64
	for i := range a {
		s += math.Abs(float64(a[i]) - float64(b[i]))
	}
	return s / float64(len(a))
}

func TestSize(t *testing.T) {
	for _, asPNG := range []bool{false, true} {
		w, h, err := Size(photo(t, 123, 77, asPNG), MaxPixels)
		if err != nil || w != 123 || h != 77 {
			t.Errorf("png %v: Size = %d, %d, %v; want 123, 77", asPNG, w, h, err)
		}
	}
}

// TestDecodeAgrees: libjpeg-turbo and Go's decoder give the same picture
// (up to their IDCT and chroma upsampling), and a region decode gives the
// region of the full decode.
func TestDecodeAgrees(t *testing.T) {
	data := photo(t, 200, 150, false)
	full := Box{W: 200, H: 150}
	turbo, tb, err := Decode(Turbo, data, 200, 150, full, 0, 0, MaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	gold, gb, err := Decode(Go, data, 200, 150, full, 0, 0, MaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	if turbo.W != 200 || turbo.H != 150 || gold.W != 200 || tb != gb {
		t.Fatalf("sizes %d×%d and %d×%d, boxes %+v %+v", turbo.W, turbo.H, gold.W, gold.H, tb, gb)
	}
	// Both are near the encoded picture; libjpeg's smooth chroma
	// upsampling nearer than Go's.
	src := picture(200, 150)
	dt, dg := meanAbsDiff(turbo.Pix, src), meanAbsDiff(gold.Pix, src)
	if dt > 2 || dg > 4 || dt > dg {
		t.Errorf("mean error against the picture: turbo %.2f, Go %.2f levels", dt, dg)
	}
	box := Box{X: 37.5, Y: 20.25, W: 101, H: 88}
	part, pb, err := Decode(Turbo, data, 200, 150, box, 0, 0, MaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	if pb.W != box.W || pb.H != box.H || pb.X < 0 || pb.X+pb.W > float64(part.W) || pb.Y+pb.H > float64(part.H) {
		t.Fatalf("region %+v of a %d×%d decode", pb, part.W, part.H)
	}
	x0, y0 := int(box.X-pb.X), int(box.Y-pb.Y)
	var worst int
	for y := range part.H {
		for x := range part.W * 3 {
			d := int(part.Pix[y*part.W*3+x]) - int(turbo.Pix[(y0+y)*600+x0*3+x])
			worst = max(worst, d, -d)
		}
	}
	if worst > 0 {
		t.Errorf("region decode differs from the full decode by up to %d levels", worst)
	}
}

// TestShrinkOnLoad: a box much larger than the wanted output decodes at a
// smaller scale, still covering at least the wanted size.
func TestShrinkOnLoad(t *testing.T) {
	data := photo(t, 640, 480, false)
	img, b, err := Decode(Turbo, data, 640, 480, Box{W: 640, H: 480}, 224, 224, MaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	if img.W != 320 || img.H != 240 || b.W != 320 || b.H != 240 {
		t.Errorf("640×480 for 224×224: decoded %d×%d, box %+v; want 320×240 (scale 4/8)", img.W, img.H, b)
	}
	if _, b, _ := Decode(Turbo, data, 640, 480, Box{W: 640, H: 480}, 600, 10, MaxPixels); b.W < 600 {
		t.Errorf("box %+v narrower than the wanted 600", b)
	}
}

func TestPNGFallback(t *testing.T) {
	data := photo(t, 60, 40, true)
	img, _, err := Decode(Turbo, data, 60, 40, Box{W: 60, H: 40}, 0, 0, MaxPixels)
	if err != nil || img.W != 60 || img.H != 40 {
		t.Fatalf("PNG: %d×%d, %v", img.W, img.H, err)
	}
}

func TestBadFiles(t *testing.T) {
	data := photo(t, 200, 150, false)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", data[:len(data)/2], "truncated"},
		{"garbage after SOI", append([]byte{0xFF, 0xD8}, bytes.Repeat([]byte{7}, 100)...), "JPEG"},
		{"not an image", []byte("hello, world"), "unknown format"},
	}
	for _, k := range cases {
		_, _, err := Decode(Turbo, k.data, 200, 150, Box{W: 200, H: 150}, 0, 0, MaxPixels)
		if err == nil || !strings.Contains(err.Error(), k.want) {
			t.Errorf("%s: err = %v, want one containing %q", k.name, err, k.want)
		}
	}
}

// TestCMYK: ImageNet holds a few CMYK JPEGs (Adobe's inverted CMYK, as PIL
// writes them too). testdata/cmyk.jpg is PIL's CMYK encoding of the RGB
// picture (8x, 10y, 200).
func TestCMYK(t *testing.T) {
	data, err := os.ReadFile("testdata/cmyk.jpg")
	if err != nil {
		t.Fatal(err)
	}
	for _, dec := range []Decoder{Turbo, Go} {
		img, _, err := Decode(dec, data, 32, 24, Box{W: 32, H: 24}, 0, 0, MaxPixels)
		if err != nil {
			t.Fatalf("%s: %v", dec, err)
		}
		var sum float64
		for y := range 24 {
			for x := range 32 {
				p := img.Pix[(y*32+x)*3:]
				sum += math.Abs(float64(p[0])-float64(8*x)) + math.Abs(float64(p[1])-float64(10*y)) + math.Abs(float64(p[2])-200)
			}
		}
		if mean := sum / (32 * 24 * 3); mean > 3 {
			t.Errorf("%s: CMYK decodes %.1f levels away from the picture on average", dec, mean)
		}
	}
}
