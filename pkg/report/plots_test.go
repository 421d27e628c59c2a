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
	if err := AccuracyByCount(filepath.Join(dir, "acc.png"), counts, acc, "t"); err != nil {
		t.Fatal(err)
	}
	cos := make([][]float64, 10)
	for i := range cos {
		cos[i] = make([]float64, 10)
		for j := range cos[i] {
			cos[i][j] = math.Cos(float64(i - j))
		}
	}
	if err := CosineMatrix(filepath.Join(dir, "cos.png"), cos, "t"); err != nil {
		t.Fatal(err)
	}
	curves := []Curve{{1, 2.0, 1.5, 0.1, math.NaN()}, {2, 1.2, 0.3, 0.1, 55}, {3, 0.9, 0.1, 0.01, 70}}
	if err := Curves(filepath.Join(dir, "curves.png"), curves, "t"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"acc.png", "cos.png", "curves.png"} {
		if w, h := decode(t, filepath.Join(dir, name)); w < 300 || h < 300 {
			t.Errorf("%s is %d×%d", name, w, h)
		}
	}
	if err := CosineMatrix(filepath.Join(dir, "x.png"), [][]float64{{1}}, "t"); err == nil {
		t.Error("a 1×1 matrix was plotted")
	}
	if err := Curves(filepath.Join(dir, "y.png"), nil, "t"); err == nil {
		t.Error("no curves were plotted")
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
