package mt19937

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// numpyVectors is the generator's part of pkg/data's
// testdata/numpy_shuffle.json, made by testdata/gen_numpy_vectors.py there
// with NumPy 1.24.2 (Debian's python3-numpy).
type numpyVectors struct {
	Uint32 []struct {
		Seed   uint32   `json:"seed"`
		Values []uint64 `json:"values"`
	} `json:"uint32"`
	Shuffles []struct {
		Seed uint32  `json:"seed"`
		N    int     `json:"n"`
		Perm []int64 `json:"perm"`
	} `json:"shuffles"`
}

func loadNumpy(t *testing.T) numpyVectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "data", "testdata", "numpy_shuffle.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v numpyVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Uint32) == 0 || len(v.Shuffles) == 0 {
		t.Fatal("no NumPy vectors")
	}
	return v
}

func TestMT19937MatchesNumPy(t *testing.T) {
	v := loadNumpy(t)
	for _, c := range v.Uint32 {
		m := New(c.Seed)
		for i, want := range c.Values {
			if got := m.Uint32(); uint64(got) != want {
				t.Fatalf("seed %d draw %d: got %d, want %d", c.Seed, i, got, want)
			}
		}
	}
	for _, c := range v.Shuffles {
		x := make([]int64, c.N)
		for i := range x {
			x[i] = int64(i)
		}
		New(c.Seed).Shuffle(x)
		if !slices.Equal(x, c.Perm) {
			t.Errorf("seed %d n %d: shuffle differs from NumPy's", c.Seed, c.N)
		}
	}
}
