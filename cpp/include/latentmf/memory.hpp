// Large allocations that fail report the bytes they asked for, so the caller can act on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

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

// Zeroed storage for n elements of T that never moves (views of it stay valid), for the factors
// that the kernels read at random. Rows start on 64-byte cache lines: a row of 32 floats that
// straddles three lines instead of two made SGD twice as slow here. Large buffers are aligned to
// 2 MiB and, on Linux, asked to be backed by huge pages: with 4 KiB pages most random row reads
// of a 25 MB U also missed the TLB (SGD again twice as slow).
template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(std::int64_t n, const char* what) : size_(n) {
    constexpr std::size_t huge_page = std::size_t(1) << 21;
    const double wanted = double(n) * sizeof(T);
    if (n < 0 || wanted > 1e18) allocation_failed(what, wanted);
    const std::size_t bytes = std::size_t(n) * sizeof(T);
    const std::size_t alignment = bytes >= huge_page ? huge_page : 64;
    capacity_ = (bytes + alignment - 1) / alignment * alignment;
    if (capacity_ == 0) capacity_ = alignment;
#if defined(_WIN32)
    data_ = static_cast<T*>(_aligned_malloc(capacity_, alignment));
#else
    void* memory = nullptr;
    data_ = posix_memalign(&memory, alignment, capacity_) == 0 ? static_cast<T*>(memory) : nullptr;
#endif
    if (!data_) allocation_failed(what, wanted);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (alignment == huge_page) madvise(data_, capacity_, MADV_HUGEPAGE);
#endif
    std::memset(static_cast<void*>(data_), 0, capacity_);
  }
  ~Buffer() { release(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = other.data_;
      size_ = other.size_;
      capacity_ = other.capacity_;
      other.data_ = nullptr;
      other.size_ = other.capacity_ = 0;
    }
    return *this;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::int64_t size() const { return size_; }

 private:
  void release() {
#if defined(_WIN32)
    _aligned_free(data_);
#else
    std::free(data_);
#endif
    data_ = nullptr;
  }

  T* data_ = nullptr;
  std::int64_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace latentmf
