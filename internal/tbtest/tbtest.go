// Package tbtest reads event files with PyPI's TensorBoard, for tests that
// check lwr's event files against the real reader.
package tbtest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Python is a python3 that imports tensorboard: $LWR_TB_PYTHON (.ci/run
// sets it to its virtual environment's), else python3 on PATH. The test
// is skipped, saying why, when there is none.
func Python(t testing.TB) string {
	t.Helper()
	py := os.Getenv("LWR_TB_PYTHON")
	if py == "" {
		py = "python3"
	}
	if err := exec.Command(py, "-c", "import tensorboard").Run(); err != nil {
		t.Skipf("needs a python3 with PyPI's tensorboard (LWR_TB_PYTHON; .ci/run installs one): %s: %v", py, err)
	}
	return py
}

// Events is what TensorBoard's EventAccumulator found in a folder, by tag:
// scalars as [step, value], histograms as [step, count, min, max, sum of
// the bucket counts], images as [step, width, height, PNG bytes] and text
// as [step, text].
type Events struct {
	Scalars    map[string][][2]float64 `json:"scalars"`
	Histograms map[string][][5]float64 `json:"histograms"`
	Images     map[string][][4]int     `json:"images"`
	Text       map[string][][2]any     `json:"text"`
}

// Read reads dir's event files with TensorBoard's EventAccumulator
// (read_events.py, beside this file), using py.
func Read(t testing.TB, py, dir string) Events {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "read_events.py")
	out, err := exec.Command(py, script, dir).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", script, dir, err)
	}
	var ev Events
	if err := json.Unmarshal(out, &ev); err != nil {
		t.Fatalf("%s printed %q: %v", script, out, err)
	}
	return ev
}
