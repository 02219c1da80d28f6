// The last resort of symbolization: names the agent resolves itself (dladdr over the loader's in-memory tables)
// for frames the CLI could not name because it cannot read the binaries at all (a deleted file, another mount
// namespace that /proc/PID/root does not reach, a CLI without the rights to /proc/PID/map_files).
#pragma once

#include "client/client.h"
#include "stack/dump_pipeline.h"
#include "stack/model.h"

namespace cppops::stack {

// Asks the agent about the pcs of `raw` that `symbolized` leaves without a function name and returns `symbolized`
// with those names filled in (function and module; the agent knows no file:line). Failures are not errors: the
// frames just stay unnamed.
FallbackNames agentNames(client::Connection& agent, const RawDump& raw, FrameSource symbolized);

}  // namespace cppops::stack
