package imagenet

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	stdjpeg "image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lwr-go/lwr/pkg/jpeg"
	"github.com/lwr-go/lwr/pkg/transform"
)

// writeTree writes n JPEGs of varied sizes and colours in ImageNet's
// layout under a temporary root, and a list naming them (labels i % 3).
func writeTree(t *testing.T, n int) (root, list string) {
	t.Helper()
	root = t.TempDir()
	var lines strings.Builder
	for i := range n {
		w, h := 40+7*i, 30+5*(i%4)
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				img.Set(x, y, color.RGBA{uint8(30 * i), uint8(x * 255 / w), uint8(y * 255 / h), 255})
			}
		}
		rel := fmt.Sprintf("train/n%08d/n%08d_%d.JPEG", i%3, i%3, i)
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := stdjpeg.Encode(&buf, img, &stdjpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&lines, "%s %d\n", rel, i%3)
	}
	list = filepath.Join(root, "list.txt")
	if err := os.WriteFile(list, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, list
}

func TestOpen(t *testing.T) {
	root, list := writeTree(t, 6)
	d, err := Open(root, list, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 6 || d.Labels[4] != 1 || d.Counts()[0] != 2 {
		t.Fatalf("opened %d images, labels %v", d.Len(), d.Labels)
	}
	// A missing image: an error naming the list's line, or skipped and counted.
	if err := os.Remove(filepath.Join(root, d.Paths[2])); err != nil {
		t.Fatal(err)
	}
	_, err = Open(root, list, 3, false)
	if err == nil || !strings.Contains(err.Error(), "list.txt: line 3:") || !strings.Contains(err.Error(), "1 of the list's 6 images are missing") {
		t.Errorf("missing image: err = %v", err)
	}
	d, err = Open(root, list, 3, true)
	if err != nil || d.Len() != 5 || len(d.Missing) != 1 || d.Missing[0] != "train/n00000002/n00000002_2.JPEG" {
		t.Errorf("--skip-missing: %v images, missing %v, err %v", d.Len(), d.Missing, err)
	}
	if _, err := Open(root, list, 2, false); err == nil || !strings.Contains(err.Error(), "list.txt:3: label 2 out of range 0..1") {
		t.Errorf("label out of range: err = %v", err)
	}
	if _, err := Open(filepath.Join(root, "nowhere"), list, 3, false); err == nil || !strings.Contains(err.Error(), "nowhere: not found") {
		t.Errorf("no root: err = %v", err)
	}
}

func collect(t *testing.T, l *Loader, order []int64, batch, skip int) ([][]byte, [][]int64) {
	t.Helper()
	var imgs [][]byte
	var labels [][]int64
	for b := range l.Epoch(context.Background(), order, batch, 7, 1, skip) {
		if b.Err != nil {
			t.Fatal(b.Err)
		}
		imgs = append(imgs, append([]byte(nil), b.Images...))
		labels = append(labels, b.Labels)
		b.Release()
	}
	return imgs, labels
}

// TestEpochReproducible: the batches depend on (seed, epoch, position)
// only, not on the number of workers; skipping batches leaves the rest.
func TestEpochReproducible(t *testing.T) {
	root, list := writeTree(t, 11)
	d, err := Open(root, list, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	order := []int64{10, 3, 5, 0, 1, 2, 4, 6, 7, 8, 9}
	jit := transform.Jitter{Brightness: 0.4, Contrast: 0.4, Saturation: 0.4}
	one := &Loader{Data: d, Size: 32, Train: true, Jitter: jit, Decoder: jpeg.Turbo, Workers: 1, Prefetch: 1}
	many := &Loader{Data: d, Size: 32, Train: true, Jitter: jit, Decoder: jpeg.Turbo, Workers: 4, Prefetch: 3}
	a, la := collect(t, one, order, 4, 0)
	b, _ := collect(t, many, order, 4, 0)
	if len(a) != 3 || len(a[2]) != 3*3*32*32 || fmt.Sprint(la) != "[[1 0 2 0] [1 2 1 0] [1 2 0]]" {
		t.Fatalf("%d batches, last of %d bytes, labels %v", len(a), len(a[len(a)-1]), la)
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("batch %d differs between 1 and 4 workers", i)
		}
	}
	c, _ := collect(t, many, order, 4, 1)
	if len(c) != 2 || !bytes.Equal(c[0], a[1]) || !bytes.Equal(c[1], a[2]) {
		t.Errorf("skipping a batch changed the others")
	}
	// Another epoch draws other crops.
	var other [][]byte
	for bt := range many.Epoch(context.Background(), order, 4, 7, 2, 0) {
		other = append(other, append([]byte(nil), bt.Images...))
		bt.Release()
	}
	if bytes.Equal(other[0], a[0]) {
		t.Errorf("epochs 1 and 2 gave the same batch")
	}
}

// TestTestTransform: the test transform is deterministic and keeps a
// uniform image uniform.
func TestTestTransform(t *testing.T) {
	root, list := writeTree(t, 3)
	d, err := Open(root, list, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	l := &Loader{Data: d, Size: 16, Decoder: jpeg.Turbo, Workers: 2}
	a, _ := collect(t, l, []int64{0, 1, 2}, 2, 0)
	b, _ := collect(t, l, []int64{0, 1, 2}, 2, 0)
	if !bytes.Equal(a[0], b[0]) || !bytes.Equal(a[1], b[1]) {
		t.Fatal("test transform is not deterministic")
	}
	// Image 0 has red 0 everywhere; image 1 red 30 (up to JPEG error).
	for i, want := range []int{0, 30} {
		img := a[0][i*3*16*16 : (i+1)*3*16*16]
		for _, v := range img[:16*16] {
			if d := int(v) - want; d < -3 || d > 3 {
				t.Fatalf("image %d: red %d, want %d", i, v, want)
			}
		}
	}
}

func TestCorruptImage(t *testing.T) {
	root, list := writeTree(t, 5)
	d, err := Open(root, list, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(root, d.Paths[3])
	b, _ := os.ReadFile(bad)
	if err := os.WriteFile(bad, b[:len(b)*9/10], 0o644); err != nil {
		t.Fatal(err)
	}
	l := &Loader{Data: d, Size: 16, Train: true, Decoder: jpeg.Turbo, Workers: 2}
	var got error
	n := 0
	for bt := range l.Epoch(context.Background(), []int64{0, 1, 2, 3, 4}, 2, 1, 0, 0) {
		n++
		got = bt.Err
		bt.Release()
	}
	if n != 2 || got == nil || !strings.Contains(got.Error(), bad) || !strings.Contains(got.Error(), "truncated") {
		t.Errorf("after %d batches: err = %v, want the truncated file named", n, got)
	}
}

func TestEpochCancel(t *testing.T) {
	root, list := writeTree(t, 8)
	d, err := Open(root, list, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	allocs := 0
	l := &Loader{Data: d, Size: 16, Train: true, Decoder: jpeg.Turbo, Workers: 2, Prefetch: 1,
		NewBuffer: func(n int) []byte { allocs++; return make([]byte, n) }}
	order := []int64{0, 1, 2, 3, 4, 5, 6, 7}
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		ch := l.Epoch(ctx, order, 1, 1, 0, 0)
		(<-ch).Release()
		cancel()
		for b := range ch { // must close
			b.Release()
		}
	}
	// The buffers survive cancelled epochs: a whole epoch still runs, on
	// the same buffers.
	if imgs, _ := collect(t, l, order, 1, 0); len(imgs) != 8 || allocs != 2 {
		t.Errorf("after cancelled epochs: %d batches, %d buffers allocated (want 8 and 2)", len(imgs), allocs)
	}
}
