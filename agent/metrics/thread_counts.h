// Threads created and exited since the agent started. The kernel keeps no such count for a process, so the
// shared agent sees each pthread_create (thread_interpose.cpp); exits follow from the kernel's live thread count:
// exited = live at start + created - live now.
#pragma once

#include <cstdint>

namespace cppops::agent::metrics {

// Records the live thread count when the agent starts. Async-signal-safe: no.
void noteAgentStart();
// Called after each successful pthread_create. Async-signal-safe: yes.
void countThreadCreated();
// The pthread_create calls counted so far.
uint64_t threadsCreated();
// Whether countThreadCreated() can ever be called in this build (the shared library interposes pthread_create;
// the static library does not, so as never to collide with a sanitizer's own pthread_create).
bool threadCreationVisible();

// Fills threads_created and threads_exited given the live thread count now. Exits never go down between two
// calls, even when a thread is counted live by the kernel before its creator's counter moved.
// Async-signal-safe: no.
void readThreadCounts(uint32_t live_threads, uint64_t& created, uint64_t& exited);

}  // namespace cppops::agent::metrics
