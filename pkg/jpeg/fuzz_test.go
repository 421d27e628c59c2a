package jpeg

import (
	"bytes"
	"image"
	stdjpeg "image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzSize: any bytes as an image's header (libjpeg-turbo's for JPEGs, Go's
// for the rest) give a size within the pixel bound or one line of error,
// without a crash. Seeds: the CMYK JPEG in testdata/, a small JPEG and a
// PNG made here.
func FuzzSize(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "cmyk.jpg"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	img := image.NewRGBA(image.Rect(0, 0, 17, 9))
	var j, p bytes.Buffer
	stdjpeg.Encode(&j, img, nil)
	png.Encode(&p, img)
	f.Add(j.Bytes())
	f.Add(p.Bytes())
	f.Add(j.Bytes()[:20])
	f.Fuzz(func(t *testing.T, data []byte) {
		w, h, err := Size(data, 1<<20)
		if err != nil {
			if strings.Contains(err.Error(), "\n") || len(err.Error()) > 2048 {
				t.Errorf("error is not one short line: %.300q", err.Error())
			}
			return
		}
		if w <= 0 || h <= 0 || int64(w)*int64(h) > 1<<20 {
			t.Errorf("accepted %d×%d pixels", w, h)
		}
	})
}
