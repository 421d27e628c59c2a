// Package libtorch adds to gotch v0.9.1 what a trainer needs and gotch
// lacks or gets wrong: seeding libtorch's generators, its thread pool,
// device selection with clear errors, running work on one OS thread (grad
// mode is per thread), and freeing the tensors of a step in one place.
package libtorch

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/csrc"
)

// ManualSeed seeds libtorch's default generators (CPU and, when present,
// every CUDA device), as torch.manual_seed does.
func ManualSeed(seed int64) { csrc.ManualSeed(seed) }

// SetNumThreads sets the size of libtorch's intra-op thread pool; n <= 0
// leaves it as it is.
func SetNumThreads(n int) {
	if n > 0 {
		csrc.SetNumThreads(n)
	}
}

// NumThreads is the size of libtorch's intra-op thread pool.
func NumThreads() int { return csrc.NumThreads() }

// CUDAAvailable reports whether libtorch sees a CUDA device.
func CUDAAvailable() bool { return gotch.CUDA.IsAvailable() }

// Version is libtorch's version, as the headers lwr was built with say
// ("1.13.0", "2.11.0").
func Version() string { return csrc.TorchVersion() }

// ParseDevice maps a --device value to a device: "cpu", "cuda", "cuda:N"
// or "auto" (the first CUDA device when there is one, else the CPU).
// "cuda" on a machine without CUDA is an error that says why.
func ParseDevice(s string) (gotch.Device, error) {
	switch s := strings.ToLower(strings.TrimSpace(s)); {
	case s == "cpu":
		return gotch.CPU, nil
	case s == "auto":
		return gotch.CudaIfAvailable(), nil
	case s == "cuda" || strings.HasPrefix(s, "cuda:"):
		idx := 0
		if s != "cuda" {
			n, err := strconv.Atoi(strings.TrimPrefix(s, "cuda:"))
			if err != nil || n < 0 {
				return gotch.CPU, fmt.Errorf("device %q: want cuda:N with N a device index", s)
			}
			idx = n
		}
		count := int(gotch.CUDA.DeviceCount())
		if count == 0 {
			return gotch.CPU, errors.New("device cuda: libtorch sees no CUDA device (a CPU-only libtorch, no GPU or no driver); use --device cpu or auto")
		}
		if idx >= count {
			return gotch.CPU, fmt.Errorf("device %s: only %d CUDA device(s)", s, count)
		}
		return gotch.CudaBuilder(uint(idx)), nil
	default:
		return gotch.CPU, fmt.Errorf("device %q: want cpu, cuda, cuda:N or auto", s)
	}
}

// AutocastCUDA switches CUDA autocast (mixed precision) on or off for the
// calling OS thread, casting to bfloat16 when bf16 (the Hopper recipe),
// else to float16, and returns whether it was on. Autocast is per thread:
// call it from the training thread (OnThread). Without a GPU it only sets
// the thread's state.
func AutocastCUDA(on, bf16 bool) (bool, error) {
	prev, msg := csrc.AutocastCUDA(on, bf16)
	if msg != "" {
		return false, Short(fmt.Errorf("autocast: %w", kernelError(msg)))
	}
	return prev, nil
}

// AutocastCUDABF16 reports whether CUDA autocast casts to bfloat16.
func AutocastCUDABF16() bool { return csrc.AutocastCUDABF16() == 1 }

// OnThread runs fn on a goroutine locked to one OS thread and waits for it.
// libtorch keeps grad mode, autocast and the current CUDA stream per OS
// thread, so a training loop that switches them must not migrate between
// threads as goroutines do. A libtorch error raised in fn (gotch's Must*
// functions panic with it: setup patches their log.Fatal) comes back as
// that error (an *Error); any other panic (a bug) as an error with the stack.
func OnThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer func() {
			if r := recover(); r != nil {
				done <- recovered(r)
			}
		}()
		done <- fn()
	}()
	return <-done
}

// Catch runs fn and returns the libtorch error it raised (an *Error), or
// nil. Other panics pass through.
func Catch(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if x, ok := r.(raised); ok {
				err = x.err
				return
			}
			e := recovered(r)
			var le *Error
			if !errors.As(e, &le) {
				panic(r)
			}
			err = e
		}
	}()
	fn()
	return nil
}

// Raise panics with err so that Catch and OnThread return err itself: for
// an error that arises deep inside a chain of gotch's Must calls (a
// collective inside a forward pass) and must keep its identity for
// errors.Is.
func Raise(err error) { panic(raised{err}) }

// raised is Raise's panic value.
type raised struct{ err error }

// Error is an error raised by libtorch: Msg is its first line, Detail the
// rest (the C++ backtrace, the Go stack), shown only with LWR_DEBUG=1.
type Error struct {
	Msg, Detail string
}

func (e *Error) Error() string {
	if os.Getenv("LWR_DEBUG") == "1" && e.Detail != "" {
		return e.Msg + "\n" + e.Detail
	}
	return e.Msg
}

// Short returns err as an *Error when it carries a libtorch message (as
// the errors gotch's functions return do), so that it prints as one line;
// other errors, and nil, come back as they are.
func Short(err error) error {
	if err == nil {
		return nil
	}
	var le *Error
	if errors.As(err, &le) {
		return err
	}
	if op, msg, found := strings.Cut(err.Error(), "libtorch: "); found {
		return shorten(strings.TrimSuffix(strings.TrimSuffix(op, " failed: "), "()"), msg, "")
	}
	return err
}

// recovered turns a recovered panic value into an error: an *Error for
// gotch's libtorch errors (their text holds "libtorch: ", after the Go
// function's name: "View() failed: libtorch: shape ..."), a "panic:" error
// with the stack for the rest.
func recovered(r any) error {
	if x, ok := r.(raised); ok {
		return x.err
	}
	if err, ok := r.(error); ok {
		if op, msg, found := strings.Cut(err.Error(), "libtorch: "); found {
			return shorten(strings.TrimSuffix(strings.TrimSuffix(op, " failed: "), "()"), msg, string(debug.Stack()))
		}
	}
	return fmt.Errorf("panic: %v\n%s", r, debug.Stack())
}

// shorten words a libtorch message as "libtorch: op: first line", without
// the C++ source position libtorch appends to it.
func shorten(op, msg, stack string) *Error {
	msg = strings.TrimSpace(msg)
	first, rest, _ := strings.Cut(msg, "\n")
	if i := strings.Index(first, "Exception raised from"); i > 0 {
		first, rest = strings.TrimSpace(first[:i]), first[i:]+"\n"+rest
	}
	if op != "" {
		first = op + ": " + first
	}
	return &Error{Msg: "libtorch: " + first, Detail: strings.TrimSpace(rest + "\n" + stack)}
}

// NoGrad runs fn with gradient recording off and restores the previous
// mode, also when fn panics. It locks the goroutine to its OS thread
// meanwhile: grad mode is per thread, and a goroutine that moved between
// switching it off and on would leave another thread without gradients.
func NoGrad(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev := ts.MustGradSetEnabled(false)
	defer ts.MustGradSetEnabled(prev)
	fn()
}

// wrap makes a ts.Tensor of a handle a kernel of internal/csrc returned.
func wrap(p unsafe.Pointer) *ts.Tensor { return ts.New(lib.Ctensor(p)) }

// kernelError is a kernel's error message as gotch words libtorch's
// errors (ts.TorchErr, as setup patches it).
func kernelError(msg string) error { return fmt.Errorf("libtorch: %s", msg) }
