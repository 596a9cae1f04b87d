// Large allocations that fail report the bytes they asked for, so the caller can act on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace latentmf {

// Raised (as MemoryError in Python) when memory for `what` cannot be had.
class AllocationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void allocation_failed(const char* what, double bytes) {
  std::ostringstream message;
  message << "cannot allocate " << bytes / (1024.0 * 1024.0) << " MiB for " << what;
  throw AllocationError(message.str());
}

// A vector of n elements (value-initialised), or AllocationError naming `what`.
template <class T>
std::vector<T> allocate(std::int64_t n, const char* what) {
  const double bytes = static_cast<double>(n) * sizeof(T);
  if (n < 0 || bytes > static_cast<double>(std::vector<T>().max_size()) * sizeof(T))
    allocation_failed(what, bytes);
  try {
    return std::vector<T>(static_cast<std::size_t>(n));
  } catch (const std::bad_alloc&) {
    allocation_failed(what, bytes);
  }
}

}  // namespace latentmf
