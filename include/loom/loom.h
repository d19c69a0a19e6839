// loom/loom.h — the umbrella header.
#pragma once
#include "loom/attrs.h"
#include "loom/custom_op.h"
#include "loom/device.h"
#include "loom/dtype.h"
#include "loom/error.h"
#include "loom/executable.h"
#include "loom/graph.h"
#include "loom/kernel.h"
#include "loom/ndarray.h"
#include "loom/ops.h"
#include "loom/package.h"
#include "loom/shape.h"
#include "loom/transfer.h"

namespace loom {
const char* version();
}
