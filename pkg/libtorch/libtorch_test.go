package libtorch

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestParseDevice(t *testing.T) {
	cuda := CUDAAvailable()
	cases := []struct {
		in      string
		want    gotch.Device
		wantErr string // substring; "" for no error
	}{
		{"cpu", gotch.CPU, ""},
		{" CPU ", gotch.CPU, ""},
		{"auto", gotch.CudaIfAvailable(), ""},
		{"tpu", gotch.CPU, `device "tpu": want cpu, cuda, cuda:N or auto`},
		{"cuda:x", gotch.CPU, "want cuda:N"},
		{"cuda:-1", gotch.CPU, "want cuda:N"},
	}
	if cuda {
		cases = append(cases, struct {
			in      string
			want    gotch.Device
			wantErr string
		}{"cuda", gotch.CudaBuilder(0), ""})
	} else {
		cases = append(cases, struct {
			in      string
			want    gotch.Device
			wantErr string
		}{"cuda", gotch.CPU, "libtorch sees no CUDA device"})
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseDevice(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("ParseDevice(%q) error = %v, want one containing %q", c.in, err, c.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans several lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDevice(%q): %v", c.in, err)
			}
			if got != c.want {
				t.Errorf("ParseDevice(%q) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}

func TestManualSeedRepeats(t *testing.T) {
	draw := func(seed int64) []float64 {
		ManualSeed(seed)
		x := ts.MustRandn([]int64{8}, gotch.Double, gotch.CPU)
		defer x.MustDrop()
		return x.Float64Values()
	}
	a, b, c := draw(7), draw(7), draw(8)
	if !slices.Equal(a, b) {
		t.Errorf("seed 7 twice: %v then %v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 7 and 8 drew the same values %v", a)
	}
}

func TestNumThreads(t *testing.T) {
	prev := NumThreads()
	defer SetNumThreads(prev)
	SetNumThreads(1)
	if got := NumThreads(); got != 1 {
		t.Errorf("after SetNumThreads(1): NumThreads() = %d", got)
	}
	SetNumThreads(0) // leaves it
	if got := NumThreads(); got != 1 {
		t.Errorf("SetNumThreads(0) changed the pool to %d", got)
	}
}

func TestNoGradOnThread(t *testing.T) {
	err := OnThread(func() error {
		w := ts.MustOnes([]int64{3}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, true)
		defer w.MustDrop()
		var inside, after bool
		NoGrad(func() {
			y := w.MustMulScalar(ts.FloatScalar(2), false)
			defer y.MustDrop()
			inside = y.MustRequiresGrad()
		})
		y := w.MustMulScalar(ts.FloatScalar(2), false)
		defer y.MustDrop()
		after = y.MustRequiresGrad()
		if inside || !after {
			t.Errorf("requires_grad inside NoGrad = %v (want false), after = %v (want true)", inside, after)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOnThreadPanic(t *testing.T) {
	err := OnThread(func() error { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("OnThread of a panicking func = %v, want an error with the panic", err)
	}
}

func TestScopeFrees(t *testing.T) {
	var s Scope
	a := s.Keep(ts.MustOnes([]int64{4}, gotch.Float, gotch.CPU))
	b := s.Keep(a.MustMulScalar(ts.FloatScalar(3), false))
	kept := s.Keep(b.MustAddScalar(ts.FloatScalar(1), false))
	if !s.Detach(kept) {
		t.Fatal("Detach of a kept tensor = false")
	}
	if s.Len() != 2 {
		t.Fatalf("Len = %d, want 2", s.Len())
	}
	s.Free()
	if a.Ctensor() != nil || b.Ctensor() != nil {
		t.Error("tensors still defined after Free")
	}
	if got := kept.Float64Values(); got[0] != 4 {
		t.Errorf("detached tensor = %v, want 4s", got)
	}
	kept.MustDrop()
	if s.Len() != 0 {
		t.Errorf("Len after Free = %d", s.Len())
	}
}

// TestAdaptedWrapperErrors calls an op that setup adapts on libtorch 1.13
// (squeeze with a list of dims is newer). Where setup adapted it, the call
// must return the clear error instead of crashing; elsewhere it must work.
func TestAdaptedWrapperErrors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "third_party", "gotch", ".lwr-setup.json"))
	if err != nil {
		t.Fatalf("read setup stamp (run make setup): %v", err)
	}
	var stamp struct {
		Adapted  []string
		Libtorch struct{ Version string }
	}
	if err := json.Unmarshal(b, &stamp); err != nil {
		t.Fatal(err)
	}
	x := ts.MustOnes([]int64{1, 3}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	y, err := x.SqueezeDims([]int64{0}, false)
	if slices.Contains(stamp.Adapted, "atg_squeeze_dims") {
		want := "torch op squeeze_dims is not available with libtorch " + stamp.Libtorch.Version
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("adapted op: err = %v, want one containing %q", err, want)
		}
		return
	}
	if err != nil {
		t.Fatalf("squeeze_dims is not adapted here, yet failed: %v", err)
	}
	defer y.MustDrop()
	if got := y.MustSize(); !slices.Equal(got, []int64{3}) {
		t.Errorf("shape %v, want [3]", got)
	}
}

// TestLibtorchErrorIsShort: an op libtorch rejects (a view of the wrong
// size) inside OnThread comes back as one line, not a process exit with
// a C++ backtrace; LWR_DEBUG=1 shows the rest.
func TestLibtorchErrorIsShort(t *testing.T) {
	bad := func() error {
		x := ts.MustOnes([]int64{4}, gotch.Float, gotch.CPU)
		defer x.MustDrop()
		x.MustView([]int64{3, 5}, false)
		return nil
	}
	err := OnThread(bad)
	var le *Error
	if !errors.As(err, &le) {
		t.Fatalf("err = %v (%T), want an *Error", err, err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "invalid for input of size 4") {
		t.Errorf("message %q: want one line naming the problem", msg)
	}
	t.Setenv("LWR_DEBUG", "1")
	if msg := err.Error(); !strings.Contains(msg, "\n") {
		t.Errorf("LWR_DEBUG=1: message %q has no detail", msg)
	}
	err = OnThread(func() error {
		if err := Catch(func() { bad() }); err != nil {
			return fmt.Errorf("caught: %w", err)
		}
		return nil
	})
	if err == nil || !strings.HasPrefix(err.Error(), "caught: ") {
		t.Errorf("Catch: err = %v, want it caught", err)
	}
}

// TestAutocastCUDA: the CUDA autocast switch (libtorch's per-device API
// from 2.4, the CUDA-only one before) sets and restores the thread's state
// and the bfloat16 cast type, with or without a GPU.
func TestAutocastCUDA(t *testing.T) {
	err := OnThread(func() error {
		was, err := AutocastCUDA(true, true)
		if err != nil {
			return err
		}
		if was {
			t.Error("autocast was on before the test")
		}
		if !AutocastCUDABF16() {
			t.Error("cast type is not bfloat16 after AutocastCUDA(true, true)")
		}
		on, err := AutocastCUDA(false, false)
		if err != nil {
			return err
		}
		if !on {
			t.Error("AutocastCUDA(false, …) says it was off after switching it on")
		}
		if AutocastCUDABF16() {
			t.Error("cast type still bfloat16 after AutocastCUDA(false, false)")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRaiseKeepsTheError: an error raised inside a chain of Must calls
// comes back from Catch and OnThread as itself, for errors.Is.
func TestRaiseKeepsTheError(t *testing.T) {
	base := errors.New("peer gone")
	wrapped := fmt.Errorf("rank 1: %w", base)
	if err := Catch(func() { Raise(wrapped) }); !errors.Is(err, base) {
		t.Errorf("Catch: %v, want %v", err, wrapped)
	}
	if err := OnThread(func() error { Raise(wrapped); return nil }); !errors.Is(err, base) {
		t.Errorf("OnThread: %v, want %v", err, wrapped)
	}
}
