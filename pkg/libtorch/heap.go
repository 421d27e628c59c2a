package libtorch

import (
	"os"
	"strings"
)

// Heap settings for libtorch's CPU tensors, which it allocates with the C
// library's malloc. glibc's defaults adapt badly to a training step, which
// frees and allocates the same few hundred megabytes of activations every
// step: free memory at the heap's top beyond twice the largest block freed
// so far goes back to the kernel at once, and a thread other than the
// process's first (the training goroutine's, under Go) allocates from its
// own arena, whose 64 MiB sub-heaps are unmapped whole as soon as they are
// empty. Either way the next step faults every page in again (measured:
// ~9,500 page faults and a 5–15% system-time share per ResNet-32 step at
// batch 128, steps scattering from 170 to 280 ms; BENCHMARKS.md). The
// three settings below keep freed memory for the next step.
const (
	// KeepHeapMmapThreshold (bytes): blocks of this size and larger are
	// mapped and unmapped by themselves, as glibc does for every large
	// block; smaller ones are reused from the heap. 32 MiB is glibc's upper
	// bound for the setting (and the ceiling its own adaptive threshold
	// reaches).
	KeepHeapMmapThreshold = 32 << 20
	// KeepHeapTrimThreshold (bytes): free memory at the heap's top is
	// returned to the kernel only beyond this, so the resident size stays
	// at a step's peak instead of falling and faulting back in every step.
	KeepHeapTrimThreshold = 1 << 30
	// KeepHeapTopPad (bytes): the free memory kept at the top of a heap;
	// at the size of an arena's sub-heap (64 MiB) an empty sub-heap is
	// kept instead of unmapped. Untouched pad costs address space, not
	// resident memory.
	KeepHeapTopPad = 64 << 20
)

// heapEnvVars are the ways a user sets glibc's malloc by hand; KeepHeap
// leaves the heap alone when one is set.
var heapEnvVars = []string{"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"}

// heapSetByUser reports which environment variable already sets glibc's
// malloc ("" when none): one of heapEnvVars, or GLIBC_TUNABLES naming a
// glibc.malloc tunable.
func heapSetByUser(getenv func(string) string) string {
	for _, v := range heapEnvVars {
		if getenv(v) != "" {
			return v
		}
	}
	if strings.Contains(getenv("GLIBC_TUNABLES"), "glibc.malloc.") {
		return "GLIBC_TUNABLES"
	}
	return ""
}

// KeepHeap makes the C heap keep the memory libtorch frees for the next
// step (KeepHeapMmapThreshold, KeepHeapTrimThreshold, KeepHeapTopPad).
// It reports whether it changed the settings: not with LWR_KEEP_HEAP=0,
// not when the environment already sets glibc's malloc (the user's choice
// stands), nor with another C library.
// The package calls it once when it loads; it is safe to call again.
func KeepHeap() bool {
	if os.Getenv("LWR_KEEP_HEAP") == "0" || heapSetByUser(os.Getenv) != "" {
		return false
	}
	return setHeap(KeepHeapMmapThreshold, KeepHeapTrimThreshold, KeepHeapTopPad)
}

func init() { KeepHeap() }
