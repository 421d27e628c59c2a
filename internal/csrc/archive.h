#ifndef LWR_ARCHIVE_H
#define LWR_ARCHIVE_H
#include <stddef.h>

#include "tensor.h"
#ifdef __cplusplus
extern "C" {
#endif
// Serialises n named tensors as libtorch's OutputArchive does for a file
// (torch::save's zip format, which torch::jit::load and gotch's LoadMulti
// read), but into memory: *data gets a malloc'd buffer of *size bytes the
// caller frees. Nothing is written to disk here, so a full disk can only
// fail the caller's own write, which it sees; libtorch's file writer
// throws from its destructor on a short write, which ends the process.
// Returns NULL, or an error message the caller frees.
char *lwr_archive_save(tensor *ts, char **names, int n, char **data, size_t *size);
#ifdef __cplusplus
}
#endif
#endif
