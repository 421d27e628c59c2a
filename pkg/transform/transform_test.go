package transform

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/lwr-go/lwr/pkg/jpeg"
)

// TestResizeMatchesPIL compares Resize with PIL's bilinear resize
// (testdata/gen_pil.py) over whole-image and fractional boxes, shrinking,
// enlarging and both at once. PIL rounds to bytes between its two passes
// and works in fixed point, so pixels may differ by one level.
func TestResizeMatchesPIL(t *testing.T) {
	b, err := os.ReadFile("testdata/pil_resize.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Width, Height int
		Pixels        []byte
		Cases         []struct {
			Box           [4]float64
			Width, Height int
			Pixels        []int
		}
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	src := jpeg.Image{W: f.Width, H: f.Height, Pix: f.Pixels}
	var z Resizer
	for _, k := range f.Cases {
		box := jpeg.Box{X: k.Box[0], Y: k.Box[1], W: k.Box[2] - k.Box[0], H: k.Box[3] - k.Box[1]}
		n := k.Width * k.Height
		out := make([]float32, 3*n)
		z.Resize(src, box, k.Width, k.Height, false, out)
		got := make([]byte, 3*n)
		ToBytes(got, out)
		worst, sum := 0, 0
		for i := range n {
			for c := range 3 {
				d := int(got[c*n+i]) - k.Pixels[3*i+c] // ours CHW, PIL HWC
				d = max(d, -d)
				worst = max(worst, d)
				sum += d
			}
		}
		if worst > 1 || float64(sum)/float64(3*n) > 0.25 {
			t.Errorf("box %v → %d×%d: max difference %d, mean %.2f levels", k.Box, k.Width, k.Height, worst, float64(sum)/float64(3*n))
		}
	}
}

func TestResizeFlip(t *testing.T) {
	src := jpeg.Image{W: 4, H: 1, Pix: []byte{0, 0, 0, 10, 10, 10, 20, 20, 20, 30, 30, 30}}
	var z Resizer
	out := make([]float32, 12)
	z.Resize(src, jpeg.Box{W: 4, H: 1}, 4, 1, true, out)
	want := []float32{30, 20, 10, 0}
	for c := range 3 {
		for x := range 4 {
			if out[c*4+x] != want[x] {
				t.Fatalf("flipped plane %d = %v, want %v", c, out[c*4:c*4+4], want)
			}
		}
	}
}

func TestRandomResizedCrop(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, size := range [][2]int{{500, 375}, {375, 500}, {1000, 100}, {64, 64}, {3, 2000}} {
		w, h := size[0], size[1]
		for range 500 {
			b := RandomResizedCrop(w, h, r)
			if b.X < 0 || b.Y < 0 || b.X+b.W > float64(w) || b.Y+b.H > float64(h) || b.W < 1 || b.H < 1 {
				t.Fatalf("%d×%d: box %+v outside the image", w, h, b)
			}
			if b.X != math.Trunc(b.X) || b.W != math.Trunc(b.W) {
				t.Fatalf("%d×%d: box %+v not in whole pixels", w, h, b)
			}
			// Unless it fell back to the central crop, the area and aspect
			// keep to their ranges (up to rounding to whole pixels).
			area := b.W * b.H / float64(w*h)
			aspect := b.W / b.H
			fallback := b.X == float64((w-int(b.W))/2) && b.Y == float64((h-int(b.H))/2) && (b.W == float64(w) || b.H == float64(h))
			if !fallback && (area > 1 || area < 0.08*0.9 || aspect < 0.75*0.9 || aspect > 4.0/3*1.1) {
				t.Fatalf("%d×%d: box %+v: area %.3f aspect %.3f", w, h, b, area, aspect)
			}
		}
	}
	// A sliver never fits 10 tries: the fallback crops to the nearest ratio.
	if b := RandomResizedCrop(3, 2000, r); b.W != 3 || b.H != 4 || b.Y != 998 {
		t.Errorf("3×2000 fallback = %+v, want 3×4 at y 998", b)
	}
}

func TestCenterCrop(t *testing.T) {
	// 500×375: shorter side to 256 gives 341×256; the central 224×224 of it
	// starts at (58, 16) (58.5 rounds to even).
	b := CenterCrop(500, 375, 256, 224)
	want := jpeg.Box{X: 58 * 500.0 / 341, Y: 16 * 375.0 / 256, W: 224 * 500.0 / 341, H: 224 * 375.0 / 256}
	if math.Abs(b.X-want.X) > 1e-9 || math.Abs(b.Y-want.Y) > 1e-9 || math.Abs(b.W-want.W) > 1e-9 || math.Abs(b.H-want.H) > 1e-9 {
		t.Errorf("CenterCrop(500, 375) = %+v, want %+v", b, want)
	}
}

func TestJitter(t *testing.T) {
	const n = 4
	base := []float32{10, 50, 100, 200, 20, 60, 110, 210, 30, 70, 120, 220}
	r := rand.New(rand.NewPCG(3, 4))
	pix := append([]float32(nil), base...)
	Jitter{}.Apply(pix, n, r)
	for i := range pix {
		if pix[i] != base[i] {
			t.Fatalf("zero jitter changed the image: %v", pix)
		}
	}
	// Brightness alone scales every value by one factor in [0.6, 1.4].
	for range 20 {
		pix = append(pix[:0], base...)
		Jitter{Brightness: 0.4}.Apply(pix, n, r)
		f := pix[0] / base[0]
		if f < 0.6 || f > 1.4 {
			t.Fatalf("brightness factor %v", f)
		}
		for i := range pix {
			if want := min(base[i]*f, 255); math.Abs(float64(pix[i]-want)) > 1e-3 {
				t.Fatalf("brightness: pixel %d = %v, want %v", i, pix[i], want)
			}
		}
	}
	// Saturation 0 would make gray; any saturation keeps a gray pixel gray,
	// and contrast keeps the mean luminance.
	gray := []float32{100, 100, 100}
	Jitter{Saturation: 0.4}.Apply(gray, 1, r)
	if math.Abs(float64(gray[0]-100)) > 1e-3 || math.Abs(float64(gray[1]-100)) > 1e-3 {
		t.Errorf("saturation moved a gray pixel: %v", gray)
	}
	pix = append(pix[:0], base...)
	Jitter{Contrast: 0.4}.Apply(pix, n, r)
	lum := func(p []float32) (s float32) {
		for i := range n {
			s += 0.299*p[i] + 0.587*p[n+i] + 0.114*p[2*n+i]
		}
		return s / n
	}
	if math.Abs(float64(lum(pix)-lum(base))) > 1e-3 {
		t.Errorf("contrast moved the mean luminance: %v → %v", lum(base), lum(pix))
	}
}
