//go:build linux && cgo

package libtorch

/*
#include <features.h>
#ifdef __GLIBC__
#include <malloc.h>
static int lwr_set_heap(int mmap_threshold, int trim_threshold, int top_pad) {
	return mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1 &&
		mallopt(M_TOP_PAD, top_pad) == 1;
}
#else
static int lwr_set_heap(int mmap_threshold, int trim_threshold, int top_pad) { return 0; }
#endif
*/
import "C"

// setHeap sets glibc's mmap and trim thresholds and top pad (bytes); false
// when the C library is not glibc or refuses a value.
func setHeap(mmapThreshold, trimThreshold, topPad int) bool {
	return C.lwr_set_heap(C.int(mmapThreshold), C.int(trimThreshold), C.int(topPad)) == 1
}
