// The C ABI's slicer_context (include/slicer/slicer.h): a handle around the internal Context,
// shared by every entry point that takes one (context_api.cpp for format 1 and decoding,
// dense/dense_api.cpp for the dense mode of format 2).
#ifndef SLICER_SRC_CONTEXT_HANDLE_HPP_
#define SLICER_SRC_CONTEXT_HANDLE_HPP_

#include "context.hpp"
#include "slicer/slicer.h"

struct slicer_context {
  explicit slicer_context(unsigned threads) : context(threads) {}
  slicer::internal::Context context;
};

#endif  // SLICER_SRC_CONTEXT_HANDLE_HPP_
