package csrc

// #include <stdlib.h>
// #include "archive.h"
import "C"

import (
	"fmt"
	"unsafe"
)

// ArchiveSave serialises the tensors ts under names in torch::save's zip
// format (what libtorch's OutputArchive writes to a file) and returns the
// bytes (see archive.h). len(names) must equal len(ts).
func ArchiveSave(ts []unsafe.Pointer, names []string) ([]byte, string) {
	if len(ts) != len(names) {
		return nil, fmt.Sprintf("archive: %d tensors, %d names", len(ts), len(names))
	}
	if len(ts) == 0 {
		return nil, "archive: no tensors"
	}
	// calloc: the slots are stored through a Go pointer type, whose write
	// barrier reads each slot's old value; malloc's garbage there can look
	// like a Go heap pointer and stop the runtime (see setup's save-arrays
	// patch).
	cnames := C.calloc(C.size_t(len(names)), C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(cnames)
	slots := unsafe.Slice((**C.char)(cnames), len(names))
	for i, n := range names {
		slots[i] = C.CString(n)
	}
	defer func() {
		for _, s := range slots {
			C.free(unsafe.Pointer(s))
		}
	}()
	var data *C.char
	var size C.size_t
	e := C.lwr_archive_save(handles(ts), (**C.char)(cnames), C.int(len(ts)), &data, &size)
	if msg := errString(e); msg != "" {
		return nil, msg
	}
	defer C.free(unsafe.Pointer(data))
	out := make([]byte, int(size))
	copy(out, unsafe.Slice((*byte)(unsafe.Pointer(data)), int(size)))
	return out, ""
}
