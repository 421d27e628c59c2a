// Package data loads the image classification data sets of the long-tailed
// benchmarks (CIFAR-10/100, Fashion-MNIST, a synthetic set), draws their
// long-tailed subsets exactly as the reference code does, and augments
// batches on the training device.
package data

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/lwr-go/lwr/pkg/atomicfile"
	"github.com/lwr-go/lwr/pkg/mt19937"
	"github.com/lwr-go/lwr/pkg/regularfile"
)

// LongTailCounts are the per-class image counts of an exponential
// long-tailed profile, as the LDAM-DRW reference computes them:
//
//	n_c = int(nMax · (1/IF)^(c/(C-1)))   for c = 0..C-1, class 0 the head.
//
// imbalance ≥ 1 is the ratio n_0 / n_{C-1}; 1 is balanced.
func LongTailCounts(classes, nMax int, imbalance float64) ([]int, error) {
	if classes < 2 {
		return nil, fmt.Errorf("long-tail counts: %d classes: want ≥ 2", classes)
	}
	if !(imbalance >= 1) || math.IsInf(imbalance, 0) {
		return nil, fmt.Errorf("imbalance factor %v: want ≥ 1", imbalance)
	}
	counts := make([]int, classes)
	inv := 1 / imbalance
	for c := range counts {
		counts[c] = int(float64(nMax) * math.Pow(inv, float64(c)/(float64(classes)-1)))
		if counts[c] < 1 {
			counts[c] = 1
		}
	}
	return counts, nil
}

// LongTailSubset returns the indices, into labels, of a long-tailed subset
// with counts[c] images of class c, as the reference's IMBALANCECIFAR
// (LDAM-DRW, CMO): seed NumPy's legacy generator once, then for each class
// in order shuffle the indices of its images and keep the first counts[c].
// The result lists class 0's indices first. A class with fewer images than
// its count is an error.
func LongTailSubset(labels []int64, counts []int, seed uint32) ([]int64, error) {
	byClass := make([][]int64, len(counts))
	for i, y := range labels {
		if y < 0 || int(y) >= len(counts) {
			return nil, fmt.Errorf("label %d of image %d outside 0..%d", y, i, len(counts)-1)
		}
		byClass[y] = append(byClass[y], int64(i))
	}
	rng := mt19937.New(seed)
	var out []int64
	for c, idx := range byClass {
		if len(idx) < counts[c] {
			return nil, fmt.Errorf("class %d has %d images, fewer than the %d asked for", c, len(idx), counts[c])
		}
		rng.Shuffle(idx)
		out = append(out, idx[:counts[c]]...)
	}
	return out, nil
}

// ListEntry is one line of a list file: an index into the original
// training set (CIFAR-LT) or a relative image path (ImageNet-LT), and a label.
type ListEntry struct {
	Item  string
	Label int64
	Line  int // line number in the file, from 1
}

// WriteIndexList writes a CIFAR-LT list file, one "index label" per line
// (labels[k] is the label of image indices[k]), atomically: a reader sees
// the old file or the whole new one.
func WriteIndexList(path string, indices, labels []int64) error {
	if len(indices) != len(labels) {
		return fmt.Errorf("write %s: %d indices, %d labels", path, len(indices), len(labels))
	}
	var b strings.Builder
	for k, i := range indices {
		fmt.Fprintf(&b, "%d %d\n", i, labels[k])
	}
	return atomicfile.WriteFile(path, []byte(b.String()))
}

// ReadList reads a list file: lines "item label" (blank lines and lines
// starting with # are skipped). Errors name the file and line.
func ReadList(path string, classes int) ([]ListEntry, error) {
	f, err := regularfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []ListEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), maxListLine)
	line := 1
	for ; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if strings.IndexByte(text, 0) >= 0 {
			return nil, fmt.Errorf("%s:%d: a NUL byte in the line: not a list of \"item label\" lines", path, line)
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"item label\", got %q", path, line, clip(text))
		}
		y, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: label %q is not an integer", path, line, clip(fields[1]))
		}
		if y < 0 || (classes > 0 && y >= int64(classes)) {
			return nil, fmt.Errorf("%s:%d: label %d out of range 0..%d", path, line, y, classes-1)
		}
		out = append(out, ListEntry{Item: fields[0], Label: y, Line: line})
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return nil, fmt.Errorf("%s:%d: longer than %d bytes: not a list of \"item label\" lines", path, line, maxListLine)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// clip is at most the first 80 bytes of a line from a file, for errors
// (a line may be 4 KB of anything).
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:80] + "…"
}

// maxListLine bounds a list file's line ("item label": a path and a
// number).
const maxListLine = 4096
