package loader

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/lwr-go/lwr/pkg/data"
)

func TestLoaderAugment(t *testing.T) {
	// One 1×4×4 image with distinct pixels.
	d := &data.Dataset{Name: "t", Classes: 2, Channels: 1, Height: 4, Width: 4, Mean: []float64{0}, Std: []float64{1},
		Labels: []int64{1}}
	for i := 0; i < 16; i++ {
		d.Images = append(d.Images, uint8(10*(i+1)))
	}
	l, err := New(d, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	plain, y := l.Batch([]int64{0}, nil)
	base := plain.Float64Values(true)
	if y.Int64Values(true)[0] != 1 || math.Abs(base[5]-60.0/255) > 1e-6 {
		t.Fatalf("plain batch: %v", base)
	}
	// The 3×3 offsets × 2 flips = 18 views of the image zero-padded by 1,
	// written out with plain loops.
	want := map[string]bool{}
	for dy := 0; dy < 3; dy++ {
		for dx := 0; dx < 3; dx++ {
			for _, flip := range []bool{false, true} {
				view := make([]float64, 16)
				for k := 0; k < 4; k++ {
					for j := 0; j < 4; j++ {
						sy, sx := dy+k-1, dx+j-1
						if flip {
							sx = dx + (3 - j) - 1
						}
						if sy >= 0 && sy < 4 && sx >= 0 && sx < 4 {
							view[k*4+j] = base[sy*4+sx]
						}
					}
				}
				want[string(mustJSON(view))] = true
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		x, y := l.Batch([]int64{0}, &Augment{Pad: 1, Flip: true, Rand: r})
		y.MustDrop()
		v := string(mustJSON(x.Float64Values(true)))
		if !want[v] {
			t.Fatalf("augmented view %s is not a padded crop of the image, flipped or not", v)
		}
		seen[v] = true
	}
	if len(seen) != 18 {
		t.Errorf("%d distinct augmented views, want all 18", len(seen))
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
