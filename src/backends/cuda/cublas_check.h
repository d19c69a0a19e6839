// LOOM_CUBLAS_CHECK(call): a failed cuBLAS / cuBLASLt call becomes a loom::Error naming the call,
// cuBLAS's status string and the place (host-only; conv.cu and matmul.cpp).
#pragma once
#include <cublas_api.h>

#include "loom/error.h"

#define LOOM_CUBLAS_CHECK(call)                                                                  \
  do {                                                                                           \
    cublasStatus_t loom_st_ = (call);                                                            \
    if (loom_st_ != CUBLAS_STATUS_SUCCESS)                                                       \
      ::loom::fail("[cuda] ", #call, ": ", cublasGetStatusString(loom_st_), " (", __FILE__, ":", \
                   __LINE__, ")");                                                               \
  } while (0)
