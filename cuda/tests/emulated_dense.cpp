// The CUDA backend's dense.cu compiled for the host emulation (emulation.hpp).
#include "emulation.hpp"
// emulation.hpp must come first: it defines the CUDA keywords for the host compiler.
#include "dense.cu"
