package report

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func decode(t *testing.T, path string) (w, h int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	return img.Bounds().Dx(), img.Bounds().Dy()
}

func TestPlotsWritePNGs(t *testing.T) {
	dir := t.TempDir()
	counts := []int64{600, 359, 215, 129, 77, 46, 27, 16, 10, 6}
	acc := []float64{95, 90, 88, 80, 70, 60, 40, math.NaN(), 20, 10}
	names := []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
	if err := AccuracyByCount(filepath.Join(dir, "acc.png"), counts, acc, names, "t"); err != nil {
		t.Fatal(err)
	}
	cos := make([][]float64, 10)
	for i := range cos {
		cos[i] = make([]float64, 10)
		for j := range cos[i] {
			cos[i][j] = math.Cos(float64(i - j))
		}
	}
	if err := CosineMatrix(filepath.Join(dir, "cos.png"), cos, names, "t"); err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	curves := []Curve{{1, 2.0, 1.5, 1, 0.1, nan, nan, nan, nan}, {2, 1.2, 0.3, 0.44, 0.1, 55, 70, 50, nan}, {3, 0.9, 0.1, 0.11, 0.01, 70, 80, 60, 20}}
	if err := Curves(filepath.Join(dir, "curves.png"), curves, "t"); err != nil {
		t.Fatal(err)
	}
	conf := make([][]int, 10)
	for i := range conf {
		conf[i] = make([]int, 10)
		conf[i][i], conf[i][(i+1)%10] = 8, 2
	}
	if err := ConfusionMatrix(filepath.Join(dir, "conf.png"), conf, names, "t"); err != nil {
		t.Fatal(err)
	}
	big := make([][]int, 30) // too many classes to name: no axes
	for i := range big {
		big[i] = make([]int, 30)
		big[i][i] = 1
	}
	if err := ConfusionMatrix(filepath.Join(dir, "big.png"), big, nil, "t"); err != nil {
		t.Fatal(err)
	}
	if err := NormsByCount(filepath.Join(dir, "norms.png"), counts, []Series{{Label: "a", Mean: []float64{3, 2.9, 2.5, 2, 1.8, 1.5, 1.2, 1, 0.9, 0.8}}, {Label: "b", Mean: acc, Std: acc}}, "t"); err != nil {
		t.Fatal(err)
	}
	bins := []Bin{{0.6, 0.8, 10, 0.7, 0.5}, {0.8, 1, 30, 0.9, 0.95}}
	if err := Reliability(filepath.Join(dir, "rel.png"), bins, 7.5, "t"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"acc.png", "cos.png", "curves.png", "conf.png", "big.png", "norms.png", "rel.png"} {
		if w, h := decode(t, filepath.Join(dir, name)); w < 300 || h < 300 {
			t.Errorf("%s is %d×%d", name, w, h)
		}
	}
	if err := CosineMatrix(filepath.Join(dir, "x.png"), [][]float64{{1}}, nil, "t"); err == nil {
		t.Error("a 1×1 matrix was plotted")
	}
	if err := Curves(filepath.Join(dir, "y.png"), nil, "t"); err == nil {
		t.Error("no curves were plotted")
	}
	if err := Reliability(filepath.Join(dir, "z.png"), []Bin{{0, 1, 0, 0, 0}}, math.NaN(), "t"); err == nil {
		t.Error("a reliability diagram without outputs was plotted")
	}
}

func TestTableBars(t *testing.T) {
	path := filepath.Join(t.TempDir(), "table.png")
	means := [][4]float64{{46, 70, 45, 20}, {50, 68, 50, 30}, {40, math.NaN(), 40, 10}}
	stds := [][4]float64{{1, 1, 2, 3}, {0.5, 1, 1, 4}, {2, math.NaN(), 1, 1}}
	if err := TableBars(path, []string{"BS", "BS + LWR", "CE"}, means, stds, "table"); err != nil {
		t.Fatal(err)
	}
	if w, h := decode(t, path); w < 400 || h < 200 {
		t.Errorf("table.png is %dx%d", w, h)
	}
	if err := TableBars(path, nil, nil, nil, "empty"); err == nil {
		t.Error("a table without rows was drawn")
	}
}

func TestCompareByCount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "by_count.png")
	counts := []int64{600, 359, 215, 129, 77, 46, 27, 16, 10, 6}
	rows := []Series{
		{Label: "CE", Mean: []float64{95, 90, 88, 80, 70, 60, 40, 20, math.NaN(), 5}, Std: []float64{1, 1, 2, 3, 4, 5, 6, 7, math.NaN(), 3}},
		{Label: "BS", Mean: []float64{90, 88, 85, 80, 75, 70, 65, 60, 55, 50}, Std: make([]float64, 10)},
	}
	if err := CompareByCount(path, counts, rows, "t"); err != nil {
		t.Fatal(err)
	}
	if w, h := decode(t, path); w < 500 || h < 300 {
		t.Errorf("by_count.png is %dx%d", w, h)
	}
	if err := CompareByCount(path, counts, nil, "t"); err == nil {
		t.Error("a comparison without rows was drawn")
	}
}

func TestCosineHistogram(t *testing.T) {
	cos := [][]float64{
		{1, 0.99, -1, 0.45},
		{0.99, 1, 0, math.NaN()},
		{-1, 0, 1, 0.46},
		{0.45, math.NaN(), 0.46, 1},
	}
	h := CosineHistogram(cos)
	// Pairs i < j: 0.99, -1, 0.45, 0, NaN (left out), 0.46 → 5 pairs.
	want := map[int]float64{39: 0.2, 0: 0.2, 29: 0.4, 20: 0.2}
	for b, f := range h {
		if math.Abs(f-want[b]) > 1e-12 {
			t.Errorf("bin %d [%.2f, %.2f): %g, want %g", b, -1+2*float64(b)/CosineBins, -1+2*float64(b+1)/CosineBins, f, want[b])
		}
	}
}

func TestCosineDistributions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cos.png")
	a, b := make([]float64, CosineBins), make([]float64, CosineBins)
	a[25], a[30], b[20], b[22] = 0.5, 0.5, 0.7, 0.3
	if err := CosineDistributions(path, []Distribution{{Label: "BS", Frac: a, Mean: 0.4}, {Label: "BS + LWR", Frac: b, Mean: 0.05}}, 0.4, "t"); err != nil {
		t.Fatal(err)
	}
	if w, h := decode(t, path); w < 500 || h < 300 {
		t.Errorf("cos.png is %dx%d", w, h)
	}
	if err := CosineDistributions(path, []Distribution{{Label: "x", Frac: a[:3]}}, 0.4, "t"); err == nil {
		t.Error("a row of 3 bins was drawn")
	}
}

func TestClassName(t *testing.T) {
	names := []string{"a", "b", "c"}
	for _, c := range []struct {
		names []string
		c     int
		most  int
		want  string
	}{{names, 1, 20, "b"}, {names, 1, 2, "1"}, {nil, 7, 20, "7"}, {names, 5, 20, "5"}} {
		if got := className(c.names, c.c, c.most); got != c.want {
			t.Errorf("className(%v, %d, %d) = %q, want %q", c.names, c.c, c.most, got, c.want)
		}
	}
}
