// Large allocations are checked before they are made: a request that cannot be had raises
// AllocationError with the bytes it asked for, instead of crashing the process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <limits>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "errors.hpp"

#if defined(_WIN32)
#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#else
#include <unistd.h>
#endif

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace latentmf {

// Raised (as MemoryError in Python) when memory for `what` cannot be had.
class AllocationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bytes of physical memory of this machine, or 0 when the system does not say.
inline std::uint64_t physical_memory() {
  static const std::uint64_t bytes = [] {
#if defined(_WIN32)
    MEMORYSTATUSEX status;
    status.dwLength = sizeof(status);
    return GlobalMemoryStatusEx(&status) ? std::uint64_t(status.ullTotalPhys) : std::uint64_t(0);
#elif defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? std::uint64_t(pages) * std::uint64_t(page) : std::uint64_t(0);
#else
    return std::uint64_t(0);
#endif
  }();
  return bytes;
}

inline std::string mebibytes(double bytes) {
  std::ostringstream text;
  text << std::fixed << std::setprecision(1) << bytes / (1024.0 * 1024.0) << " MiB";
  return text.str();
}

[[noreturn]] inline void allocation_failed(const char* what, double bytes) {
  throw AllocationError("cannot allocate " + mebibytes(bytes) + " for " + what);
}

// Refuses a request of `bytes` for `what` that exceeds the machine's physical memory. Such a
// request could only be met from swap, and with overcommit (Linux's default) the allocation
// itself often "succeeds": the process is then killed when the pages are touched. Refusing it
// here turns that into an error the caller can act on, before anything is allocated.
inline void check_available(double bytes, const char* what) {
  const std::uint64_t physical = physical_memory();
  if (physical != 0 && bytes > double(physical))
    throw AllocationError("cannot allocate " + mebibytes(bytes) + " for " + what + ": more than the " +
                          mebibytes(double(physical)) + " of physical memory");
}

// The bytes of n elements of `size` bytes each, once n is known to be usable: not negative, the
// product not overflowing, and within physical memory.
inline std::size_t checked_bytes(std::int64_t n, std::size_t size, const char* what) {
  require(n >= 0, "cannot allocate a negative number of elements (", n, ") for ", what);
  const double bytes = double(n) * double(size);
  if (std::uint64_t(n) > std::numeric_limits<std::size_t>::max() / size) allocation_failed(what, bytes);
  check_available(bytes, what);
  return std::size_t(n) * size;
}

// A vector of n elements (value-initialised), or AllocationError naming `what`.
template <class T>
std::vector<T> allocate(std::int64_t n, const char* what) {
  const std::size_t bytes = checked_bytes(n, sizeof(T), what);
  if (std::size_t(n) > std::vector<T>().max_size()) allocation_failed(what, double(bytes));
  try {
    return std::vector<T>(static_cast<std::size_t>(n));
  } catch (const std::bad_alloc&) {
    allocation_failed(what, double(bytes));
  }
}

// Zeroed storage for n elements of T that never moves (views of it stay valid), for the factors
// that the kernels read at random. Rows start on 64-byte cache lines: a row of 32 floats that
// straddles three lines instead of two made SGD twice as slow here. Large buffers are aligned to
// 2 MiB and, on Linux, asked to be backed by huge pages: with 4 KiB pages most random row reads
// of a 25 MB U also missed the TLB (SGD again twice as slow).
//
// Storage that its owner fills completely before reading it, and reads in order, may be left
// unzeroed (zeroed = false): its pages are then touched first by the threads that fill it, once,
// and not by a memset beforehand (for the 720 MB of the block grid of 90M ratings, zeroing took
// 0.5 s). Such storage is not asked for huge pages: read in order it gains nothing from them, and
// finding them made the kernel stall on compacting memory (filling that grid took 0.5 to 2.2 s of
// CPU with huge pages, 0.47 to 0.8 s without).
template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(std::int64_t n, const char* what, bool zeroed = true) : size_(n) {
    constexpr std::size_t huge_page = std::size_t(1) << 21;
    const std::size_t bytes = checked_bytes(n, sizeof(T), what);
    const std::size_t alignment = bytes >= huge_page ? huge_page : 64;
    if (bytes > std::numeric_limits<std::size_t>::max() - alignment) allocation_failed(what, double(bytes));
    capacity_ = (bytes + alignment - 1) / alignment * alignment;
    if (capacity_ == 0) capacity_ = alignment;
#if defined(_WIN32)
    data_ = static_cast<T*>(_aligned_malloc(capacity_, alignment));
#else
    void* memory = nullptr;
    data_ = posix_memalign(&memory, alignment, capacity_) == 0 ? static_cast<T*>(memory) : nullptr;
#endif
    if (!data_) allocation_failed(what, double(bytes));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (alignment == huge_page && zeroed) madvise(data_, capacity_, MADV_HUGEPAGE);
#endif
    if (zeroed) std::memset(static_cast<void*>(data_), 0, capacity_);
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
  bool empty() const { return size_ == 0; }

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
