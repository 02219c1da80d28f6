// Taking a CPU or wall-clock profile of a process without an agent: the CLI samples the process's threads itself,
// at the rate, reading each as a stack dump through ptrace does (stack/thread_reader.h). A thread asleep in the
// kernel is read where it sleeps, never stopped, and only when it begins a new wait: while it stays in the same
// call, with the same arguments, stack pointer and pc, its last stack stands for it. A running thread is stopped
// for each sample, for as long as it takes to copy its registers and stack (tens of microseconds).
#pragma once

#include <sys/types.h>

#include "core/result.h"
#include "profile/agent_source.h"

namespace cppops::profile {

// CPU mode samples the threads the kernel reports running (on a CPU or waiting for one); wall mode every thread.
// Permission problems come back as kPermission errors that say why and what to do, as for stack dumps. While a
// thread is stopped, Ctrl-C, SIGTERM, SIGHUP, SIGQUIT and Ctrl-Z are held back, and take effect between samples.
Result<Capture> profileThroughPtrace(pid_t pid, const CaptureOptions& options);

}  // namespace cppops::profile
