// The control channel: one thread, one poll loop over the listening socket and every client.
//
// Idle, the thread sleeps in poll() with no timeout, so an idle agent costs no wake-ups. Every connection has a
// deadline for sending its request and for reading its reply; a silent or half-sent client only ever occupies
// its own slot, never the loop.
#pragma once

#include <sys/types.h>

#include <string>

#include "options.h"

namespace cppops::agent {

class Server {
 public:
  // Creates the socket directory (0700) if needed, refuses one that is not private, and binds the socket (0600).
  // Returns 0 or an errno value; on failure a line on stderr says why. Async-signal-safe: no.
  int open(const Options& options);
  const std::string& socketPath() const { return socket_path_; }
  // Serves until stop() is called. Runs on the control thread. Async-signal-safe: no.
  void run();
  // Wakes run() and makes it return. Callable from any thread. Async-signal-safe: yes (write to an eventfd).
  void stop();
  // Closes the descriptors without unlinking anything: for the child after fork(), where the socket belongs to
  // the parent. Async-signal-safe: yes.
  void abandonAfterFork();
  // Closes descriptors and removes the socket file. Async-signal-safe: no.
  void close();

 private:
  Options options_;
  std::string socket_path_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
};

}  // namespace cppops::agent
