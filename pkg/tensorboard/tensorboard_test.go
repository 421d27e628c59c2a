package tensorboard

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lwr-go/lwr/internal/tbtest"
)

// TestMaskedCRC: CRC-32C's check value (of "123456789", 0xE3069283, RFC
// 3720 B.4), masked as TFRecord masks it.
func TestMaskedCRC(t *testing.T) {
	c := uint32(0xE3069283)
	if got, want := maskedCRC([]byte("123456789")), ((c>>15)|(c<<17))+0xa282ead8; got != want {
		t.Errorf("maskedCRC = %#x, want %#x", got, want)
	}
}

// TestRecordsRefuse: damaged files are refused, naming the record.
func TestRecordsRefuse(t *testing.T) {
	good := appendRecord(appendRecord(nil, []byte("first")), []byte("second"))
	if recs, err := Records(good); err != nil || len(recs) != 2 || string(recs[1]) != "second" {
		t.Fatalf("got %q, %v", recs, err)
	}
	flip := bytes.Clone(good)
	flip[len(flip)-6] ^= 1
	huge := bytes.Clone(good)
	binary.LittleEndian.PutUint64(huge[21:], 1<<40)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"data changed", flip, "record 1 at byte 21: the data's CRC does not match"},
		{"cut short", good[:len(good)-3], "record 1 at byte 21: claims 6 bytes of data and 4 of CRC, 7 follow its header"},
		{"length changed", huge, "record 1 at byte 21: the length's CRC does not match"},
		{"header cut", good[:25], "record 1 at byte 21: 4 bytes left"},
	} {
		recs, err := Records(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) || len(recs) != 1 {
			t.Errorf("%s: %d records, err %v; want the first and %q", tc.name, len(recs), err, tc.want)
		}
	}
}

// TestReadByTensorBoard: scalars, a histogram, an image and text written
// here come back from TensorBoard's own reader with their steps and
// values; a file continued after step 2 has lost steps 3 and 4, and goes
// on from there.
func TestReadByTensorBoard(t *testing.T) {
	py := tbtest.Python(t)
	dir := t.TempDir()
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	png, _ := os.ReadFile(filepath.Join("testdata", "pixel.png"))
	if err := w.WriteText(0, "config", "| a | b |\n|---|---|\n| 1 | 2 |"); err != nil {
		t.Fatal(err)
	}
	for step := int64(1); step <= 4; step++ {
		if err := w.WriteScalars(step, []Scalar{{"train/loss", 1 / float64(step)}, {"test/top1", 10 * float64(step)}}); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteHistogram(step, "classifier/cosines", []float64{-0.5, 0, 0.25, 1, math.NaN()}, 10); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteImage(4, "figures/curves", png, 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := tbtest.Read(t, py, dir)
	want := tbtest.Events{
		Scalars: map[string][][2]float64{
			"train/loss": {{1, 1}, {2, 0.5}, {3, float64(float32(1.0 / 3))}, {4, 0.25}},
			"test/top1":  {{1, 10}, {2, 20}, {3, 30}, {4, 40}},
		},
		Histograms: map[string][][5]float64{"classifier/cosines": {{1, 4, -0.5, 1, 4}, {2, 4, -0.5, 1, 4}, {3, 4, -0.5, 1, 4}, {4, 4, -0.5, 1, 4}}},
		Images:     map[string][][4]int{"figures/curves": {{4, 1, 1, len(png)}}},
		Text:       map[string][][2]any{"config": {{0.0, "| a | b |\n|---|---|\n| 1 | 2 |"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TensorBoard read\n%+v\nwant\n%+v", got, want)
	}

	// Resumed after step 2: steps 3 and 4 are cut, then written anew.
	w, _, err = Continue(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteScalars(3, []Scalar{{"train/loss", 7}}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got = tbtest.Read(t, py, dir)
	if s := got.Scalars["train/loss"]; !reflect.DeepEqual(s, [][2]float64{{1, 1}, {2, 0.5}, {3, 7}}) {
		t.Errorf("continued after step 2: train/loss %v, want steps 1, 2 and the new 3", s)
	}
	if s := got.Scalars["test/top1"]; len(s) != 2 || len(got.Images) != 0 || len(got.Text["config"]) != 1 {
		t.Errorf("continued after step 2: test/top1 %v, images %v, text %v; want 2 steps, none, the config once", s, got.Images, got.Text)
	}
	files, _ := filepath.Glob(filepath.Join(dir, FilePrefix+"*"))
	if len(files) != 1 {
		t.Errorf("%d event files, want the one continued", len(files))
	}
}

// TestServedByTensorBoard: `tensorboard --logdir` started on 127.0.0.1
// serves the scalars written here over its HTTP API, with their steps.
func TestServedByTensorBoard(t *testing.T) {
	py := tbtest.Python(t)
	dir := t.TempDir()
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	for step := int64(1); step <= 3; step++ {
		if err := w.WriteScalars(step, []Scalar{{"train/loss_bal", float64(step) / 2}}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	cmd := exec.Command(py, "-m", "tensorboard.main", "--logdir", dir, "--host", "127.0.0.1", "--port", "0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill() // the process this test started, by its PID
		cmd.Wait()
	}()
	found := make(chan string, 1)
	go func() { // TensorBoard says where it serves on stderr
		addr := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if u := addr.FindString(sc.Text()); u != "" {
				found <- u
			}
		}
	}()
	var url string
	select {
	case url = <-found:
	case <-time.After(60 * time.Second):
		t.Fatal("tensorboard did not say where it serves in 60 s")
	}
	var got [][3]float64
	for end := time.Now().Add(60 * time.Second); len(got) < 3; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("tensorboard served %v in 60 s, want 3 steps", got)
		}
		resp, err := http.Get(url + "data/plugin/scalars/scalars?tag=train/loss_bal&run=.")
		if err != nil {
			continue
		}
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
	}
	for i, e := range got { // [wall time, step, value]
		if e[1] != float64(i+1) || e[2] != float64(i+1)/2 {
			t.Errorf("served %v, want steps 1-3 with values 0.5, 1, 1.5", got)
			break
		}
	}
}
