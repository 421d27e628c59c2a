package csrc

// #include <stdlib.h>
// #include "dist.h"
import "C"

import "unsafe"

// DistInit joins a process group (see dist.h); "" error on success.
func DistInit(backend, addr string, port, rank, world int, server bool, prefix string, timeoutMs int64) (unsafe.Pointer, string) {
	cb, ca, cp := C.CString(backend), C.CString(addr), C.CString(prefix)
	defer C.free(unsafe.Pointer(cb))
	defer C.free(unsafe.Pointer(ca))
	defer C.free(unsafe.Pointer(cp))
	var g unsafe.Pointer
	e := C.lwr_dist_init(cb, ca, C.int(port), C.int(rank), C.int(world), flag(server), cp, C.int64_t(timeoutMs), &g)
	return g, errString(e)
}

// handles is a C array view of ts (which must not be empty).
func handles(ts []unsafe.Pointer) *C.tensor { return (*C.tensor)(unsafe.Pointer(&ts[0])) }

// DistAllreduce sums (or averages, mean) ts over the group in buckets.
func DistAllreduce(g unsafe.Pointer, ts []unsafe.Pointer, mean bool, bucketBytes int64) string {
	if len(ts) == 0 {
		return ""
	}
	return errString(C.lwr_dist_allreduce(g, handles(ts), C.int(len(ts)), flag(mean), C.int64_t(bucketBytes)))
}

// DistBroadcast copies ts from root to every rank, in buckets.
func DistBroadcast(g unsafe.Pointer, ts []unsafe.Pointer, root int, bucketBytes int64) string {
	if len(ts) == 0 {
		return ""
	}
	return errString(C.lwr_dist_broadcast(g, handles(ts), C.int(len(ts)), C.int(root), C.int64_t(bucketBytes)))
}

// DistBarrier waits for every rank.
func DistBarrier(g unsafe.Pointer) string { return errString(C.lwr_dist_barrier(g)) }

// DistSyncBatchNorm is batch norm in training over the group's global
// batch (see dist.h).
func DistSyncBatchNorm(g, x, w, b, mean, variance unsafe.Pointer, momentum, eps float64) (unsafe.Pointer, string) {
	var out C.tensor
	e := C.lwr_dist_sync_batch_norm(g, C.tensor(x), C.tensor(w), C.tensor(b), C.tensor(mean), C.tensor(variance),
		C.double(momentum), C.double(eps), &out)
	return unsafe.Pointer(out), errString(e)
}

// DistHas reports whether the shim was built with backend ("gloo", "nccl").
func DistHas(backend string) bool {
	cb := C.CString(backend)
	defer C.free(unsafe.Pointer(cb))
	return C.lwr_dist_has(cb) == 1
}

// DistDestroy leaves and frees the group.
func DistDestroy(g unsafe.Pointer) { C.lwr_dist_destroy(g) }
