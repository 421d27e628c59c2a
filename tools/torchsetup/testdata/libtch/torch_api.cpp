#include "torch_api.h"
const char *torch_last_err = nullptr;
#include "torch_api_generated.cpp.h"
