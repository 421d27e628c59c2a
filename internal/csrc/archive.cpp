#include "archive.h"

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

char *lwr_archive_save(tensor *ts, char **names, int n, char **data, size_t *size) {
  *data = nullptr;
  *size = 0;
  try {
    torch::serialize::OutputArchive archive;
    for (int i = 0; i < n; ++i) archive.write(std::string(names[i]), *ts[i], /*is_buffer=*/false);
    std::ostringstream out;
    archive.save_to(out);
    const std::string bytes = out.str();
    char *buf = static_cast<char *>(malloc(bytes.size() > 0 ? bytes.size() : 1));
    if (buf == nullptr) return strdup("checkpoint: out of memory for the serialised tensors");
    memcpy(buf, bytes.data(), bytes.size());
    *data = buf;
    *size = bytes.size();
    return nullptr;
  } catch (const std::exception &e) {
    return strdup(e.what());
  }
}
