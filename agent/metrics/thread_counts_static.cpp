// Only in libcppops_agent.a: a program linking the agent statically may also link a sanitizer runtime that
// defines pthread_create itself, so this build does not interpose it and reports thread creations as unknown.
#include "metrics/thread_counts.h"

namespace cppops::agent::metrics {
bool threadCreationVisible() { return false; }
}  // namespace cppops::agent::metrics
