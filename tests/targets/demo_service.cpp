// The README's demo: a small C++ service with worker threads that contend on a lock, a thread waiting for
// input on a pipe, and a ticker. It knows nothing of cppops; the demo preloads the agent into it.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

namespace {

std::mutex g_cache_lock;
std::condition_variable g_work_ready;
std::atomic<long> g_requests{0};

__attribute__((noinline)) void handleRequest() {
  std::lock_guard<std::mutex> lock(g_cache_lock);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a slow critical section: the contention to find
  g_requests.fetch_add(1, std::memory_order_relaxed);
}

void worker() {
  for (;;) handleRequest();
}

void pipeReader(int fd) {
  char buf[64];
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

void idleConsumer() {
  std::mutex m;
  std::unique_lock<std::mutex> lock(m);
  for (;;) g_work_ready.wait(lock);
}

}  // namespace

int main() {
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back(worker);
    pthread_setname_np(threads.back().native_handle(), "worker");
  }
  int fds[2];
  if (pipe(fds) != 0) return 1;
  threads.emplace_back(pipeReader, fds[0]);
  pthread_setname_np(threads.back().native_handle(), "pipe-reader");
  threads.emplace_back(idleConsumer);
  pthread_setname_np(threads.back().native_handle(), "consumer");
  std::printf("demo_service ready (pid %d)\n", static_cast<int>(getpid()));
  std::fflush(stdout);
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}
