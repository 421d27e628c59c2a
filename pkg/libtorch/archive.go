package libtorch

import (
	"errors"
	"unsafe"

	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/csrc"
)

// SaveArchive serialises named in the format of gotch's SaveMultiNew
// (libtorch's OutputArchive, torch::save's zip; ts.LoadMulti reads it)
// and returns the bytes for the caller to write: libtorch's own file
// writer ends the process on a short write (a full disk), where a Go
// write returns the error. It holds the whole archive in memory, about
// the tensors' size.
func SaveArchive(named []ts.NamedTensor) ([]byte, error) {
	handles := make([]unsafe.Pointer, len(named))
	names := make([]string, len(named))
	for i, nt := range named {
		handles[i], names[i] = nt.Tensor.Ctensor(), nt.Name
	}
	b, msg := csrc.ArchiveSave(handles, names)
	if msg != "" {
		return nil, errors.New(msg)
	}
	return b, nil
}
