// The agent's helper threads (the heap sampler's, a running profile's): a stack dump leaves them out, as it leaves
// out the control thread, because they are not the program's. They block every signal (so that the host's are
// never delivered to them) and could not answer the dump's anyway. What they allocate is never heap-sampled.
#pragma once

#include <sys/types.h>

namespace cppops::agent {

// Called by the helper thread itself as it starts, and as it ends.
void noteOwnThread();
void forgetOwnThread();

// Whether tid is a helper thread of the agent in this process.
bool isOwnThread(pid_t tid);

// In a forked child, which has none of its parent's threads.
void forgetOwnThreadsAfterFork();

}  // namespace cppops::agent
