#if !defined(TORCH_STABLE_ONLY) && !defined(TORCH_TARGET_VERSION)
#pragma once

// MSVC keeps __cplusplus at 199711L unless /Zc:__cplusplus is passed, so check
// _MSVC_LANG there. nvcc on Windows preprocesses with cl and forwards its -std
// to it, so this also covers .cu files.
#if (defined(_MSVC_LANG) && _MSVC_LANG < 202002L) || \
    (!defined(_MSVC_LANG) && __cplusplus < 202002L)
#error C++20 or later compatible compiler is required to use ATen.
#endif

#include <ATen/Context.h>
