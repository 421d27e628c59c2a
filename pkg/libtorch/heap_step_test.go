package libtorch_test

// External test package: the training step below needs pkg/resnet, which
// imports this package.

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/resnet"
)

// minorFaults is the process's page faults served without I/O so far.
func minorFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return ru.Minflt
}

// heapStepChild, when set, makes TestHeapStepChild report the page faults
// of a training step in its process; TestKeepHeapStepFaults runs it with
// and without KeepHeap.
const heapStepChild = "LWR_HEAP_TEST_CHILD"

// TestHeapStepChild runs forward and backward passes of ResNet-32 at batch
// 64 on one thread and prints the minor page faults per pass after four
// passes of warm-up ("faults per step N").
func TestHeapStepChild(t *testing.T) {
	if os.Getenv(heapStepChild) == "" {
		t.Skip("run by TestKeepHeapStepFaults")
	}
	err := libtorch.OnThread(func() error {
		libtorch.SetNumThreads(1)
		libtorch.ManualSeed(0)
		vs := nn.NewVarStore(gotch.CPU)
		net, err := resnet.ResNet32(vs.Root(), resnet.Options{Classes: 10, InChannels: 3})
		if err != nil {
			return err
		}
		x := ts.MustRandn([]int64{64, 3, 32, 32}, gotch.Float, gotch.CPU)
		y := ts.MustRandint(10, []int64{64}, gotch.Int64, gotch.CPU)
		const warm, steps = 4, 6
		var start int64
		for i := 0; i < warm+steps; i++ {
			if i == warm {
				start = minorFaults()
			}
			var s libtorch.Scope
			logits, feat := net.ForwardT(x, true)
			s.Keep(logits)
			s.Keep(feat)
			s.Keep(logits.MustCrossEntropyLoss(y, libtorch.None, 1, -100, 0, false)).MustBackward()
			s.Free()
		}
		fmt.Printf("faults per step %d\n", (minorFaults()-start)/steps)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestKeepHeapStepFaults counts the page faults of a training step (the
// activations freed and allocated again) in two fresh processes: glibc's
// defaults (LWR_KEEP_HEAP=0) hand freed activations back to the kernel and
// fault them in again every step; with KeepHeap the heap keeps them.
func TestKeepHeapStepFaults(t *testing.T) {
	if !libtorch.KeepHeap() {
		t.Skip("KeepHeap is off: not glibc on Linux, LWR_KEEP_HEAP=0, or glibc's malloc set by hand")
	}
	faults := func(keep string) int64 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHeapStepChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), heapStepChild+"=1", "LWR_KEEP_HEAP="+keep)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("LWR_KEEP_HEAP=%s: %v\n%s", keep, err, out)
		}
		var n int64
		for _, line := range strings.Split(string(out), "\n") {
			if _, err := fmt.Sscanf(line, "faults per step %d", &n); err == nil {
				return n
			}
		}
		t.Fatalf("LWR_KEEP_HEAP=%s: no fault count in\n%s", keep, out)
		return 0
	}
	kept, glibc := faults("1"), faults("0")
	// glibc's defaults fault in over 10,000 pages a step here (Debian's
	// libtorch 1.13: 10,930; pip's 2.11: 21,551); with KeepHeap what is
	// left is libtorch's own first-touch work (84 and 968).
	t.Logf("minor page faults per step: %d with KeepHeap, %d with glibc's defaults", kept, glibc)
	if kept > 500 && 10*kept > glibc {
		t.Errorf("with KeepHeap a step faults %d pages in, glibc's defaults %d; want at most a tenth of those, or ≤ 500", kept, glibc)
	}
}
