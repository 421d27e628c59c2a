// A libtorch header that does not parse: nothing can be adapted.
#pragma once
namespace torch {
struct Tensor { int d }
}
