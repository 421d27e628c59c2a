// Package imagenet reads ImageNet-LT: split files of "relative/path label"
// lines (ImageNet_LT_train.txt, _val.txt, _test.txt) over an ILSVRC2012
// folder, and decodes its JPEGs on worker goroutines into batches, with
// the training transform (RandomResizedCrop, flip, ColorJitter) or the test
// one (Resize, CenterCrop).
package imagenet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/lwr-go/lwr/pkg/data"
	"github.com/lwr-go/lwr/pkg/jpeg"
	"github.com/lwr-go/lwr/pkg/regularfile"
)

// Classes is ImageNet's number of classes.
const Classes = 1000

// Split names a split file of ImageNet-LT.
func Split(name string) string { return "ImageNet_LT_" + name + ".txt" }

// Dataset is the images a list file names under a root folder.
type Dataset struct {
	Name    string
	Root    string   // the ILSVRC2012 folder (train/, val/)
	List    string   // the list file read
	Paths   []string // relative to Root
	Lines   []int    // each image's line in List
	Labels  []int64
	Classes int
	Missing []string // images of the list not found, dropped (Open with skipMissing)
}

// Len is the number of images.
func (d *Dataset) Len() int { return len(d.Labels) }

// Counts returns the number of images per class.
func (d *Dataset) Counts() []int64 {
	out := make([]int64, d.Classes)
	for _, y := range d.Labels {
		out[y]++
	}
	return out
}

// MaxImageBytes is the largest image file read by default: 64 MiB (the
// largest ImageNet JPEG weighs about 16 MB). Change it with
// --max-image-bytes.
const MaxImageBytes = 64 << 20

// ReadImageFile reads an image file of at most maxBytes bytes. Anything
// but a regular file (a device such as /dev/zero, a FIFO that would block
// a worker forever, a folder) is refused before it is read.
func ReadImageFile(path string, maxBytes int64) ([]byte, error) {
	b, err := regularfile.ReadFile(path, maxBytes, "--max-image-bytes")
	if err == nil && len(b) == 0 {
		err = fmt.Errorf("%s: an empty file (0 bytes): not an image", path)
	}
	return b, err
}

// Open reads list (labels must be below classes) and checks that every
// image it names is a regular file under root. A path that is absolute
// or leaves root ("../x") is an error naming the list's line, and so is an
// entry that is not a regular file (a device, a FIFO, a folder). A missing
// image is an error too, unless skipMissing, which drops the missing
// images and lists them in Missing.
func Open(root, list string, classes int, skipMissing bool) (*Dataset, error) {
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("image folder %s: not found (point --data-dir at ILSVRC2012, the folder holding train/ and val/)", root)
	}
	entries, err := data.ReadList(list, classes)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: no images", list)
	}
	for _, e := range entries {
		if !filepath.IsLocal(e.Item) {
			return nil, fmt.Errorf("%s: line %d: %q is not a path inside the image folder (absolute, or leaves it through ..)", list, e.Line, e.Item)
		}
	}
	missing := make([]bool, len(entries))
	notRegular := make([]string, len(entries))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	workers := min(32, 4*runtime.NumCPU())
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(entries); i += workers {
				st, err := os.Stat(filepath.Join(root, entries[i].Item))
				switch {
				case errors.Is(err, fs.ErrNotExist):
					missing[i] = true
				case err == nil && !st.Mode().IsRegular():
					notRegular[i] = st.Mode().Type().String()
				case err != nil:
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	for i, e := range entries {
		if notRegular[i] != "" {
			return nil, fmt.Errorf("%s: line %d: %s is not a regular file (%s)", list, e.Line, filepath.Join(root, e.Item), notRegular[i])
		}
	}
	d := &Dataset{Name: filepath.Base(list), List: list, Root: root, Classes: classes}
	nMissing := 0
	for _, m := range missing {
		if m {
			nMissing++
		}
	}
	for i, e := range entries {
		if missing[i] {
			if !skipMissing {
				return nil, fmt.Errorf("%s: line %d: %s: no such image (%d of the list's %d images are missing; --skip-missing trains without them)",
					list, e.Line, filepath.Join(root, e.Item), nMissing, len(entries))
			}
			d.Missing = append(d.Missing, e.Item)
			continue
		}
		d.Paths = append(d.Paths, e.Item)
		d.Lines = append(d.Lines, e.Line)
		d.Labels = append(d.Labels, e.Label)
	}
	if d.Len() == 0 {
		return nil, fmt.Errorf("%s: none of its %d images is under %s", list, len(entries), root)
	}
	return d, nil
}

// checkImage reads an image's header (at most maxPixels pixels) and
// decodes it: JPEGs at 1/8 scale, which costs little but runs all of the
// entropy decoding, so that truncated or corrupt data shows.
func checkImage(b []byte, maxPixels int64) error {
	if len(b) == 0 {
		return errors.New("empty file")
	}
	w, h, err := jpeg.Size(b, maxPixels)
	if err != nil {
		return err
	}
	_, _, err = jpeg.Decode(jpeg.Turbo, b, w, h, jpeg.Box{W: float64(w), H: float64(h)}, 1, 1, maxPixels)
	return err
}

// Check reads and decodes every image of d in parallel (workers
// goroutines; 0: one per core; checkImage): a regular file of at most
// maxBytes, a format Go or libjpeg-turbo reads, at most maxPixels pixels,
// data that decodes without error. The first image that fails is an error
// naming the list's line, unless skip, which drops the failing images from
// d and returns them, each "list:line: path: why".
func (d *Dataset) Check(maxPixels, maxBytes int64, workers int, skip bool) ([]string, error) {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	bad := make([]error, d.Len())
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < d.Len(); i += workers {
				path := filepath.Join(d.Root, d.Paths[i])
				b, err := ReadImageFile(path, maxBytes)
				if err == nil {
					err = checkImage(b, maxPixels)
					if err != nil {
						err = fmt.Errorf("%s: %w", path, err)
					}
				}
				bad[i] = err
			}
		}()
	}
	wg.Wait()
	var dropped []string
	kept := 0
	for i, err := range bad {
		if err == nil {
			d.Paths[kept], d.Lines[kept], d.Labels[kept] = d.Paths[i], d.Lines[i], d.Labels[i]
			kept++
			continue
		}
		msg := fmt.Sprintf("%s: line %d: %v", d.List, d.Lines[i], err)
		if !skip {
			return nil, fmt.Errorf("%s (--skip-corrupt trains without such images)", msg)
		}
		dropped = append(dropped, msg)
	}
	d.Paths, d.Lines, d.Labels = d.Paths[:kept], d.Lines[:kept], d.Labels[:kept]
	if kept == 0 {
		return dropped, fmt.Errorf("%s: none of its images passed the check; the first: %s", d.List, dropped[0])
	}
	return dropped, nil
}
