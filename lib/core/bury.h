// Leaving an object's memory to the process's exit. For what a one-shot command no longer needs once its answer
// is out: a 1,000-thread dump, or libdwfl's tables for every module of the target, take milliseconds to free
// piece by piece, and the exit that follows reclaims them at once. The objects stay reachable from a static list,
// so leak checkers do not report them (the practice of LLVM's BuryPointer). Never for loops: what is buried is
// never freed.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

namespace cppops {

template <typename T>
void buryUntilExit(std::unique_ptr<T> object) {
  static std::mutex lock;
  static auto* buried = new std::vector<std::shared_ptr<void>>;  // never freed, on purpose
  std::lock_guard<std::mutex> guard(lock);
  buried->push_back(std::shared_ptr<void>(std::move(object)));
}

}  // namespace cppops
