// The OpenMP runtime, started when the module loads with at most one thread per processor, however
// many OMP_NUM_THREADS asks for, while the environment stays as the user set it.
//
// LLVM's OpenMP runtime (libomp: clang builds, the macOS wheels) sizes its thread tables from
// OMP_NUM_THREADS when it initialises, at the first OpenMP call, and for an absurd value (say
// 100000000) ends the whole process ("OMP: Error #101: Out of heap memory") or spends minutes
// filling gigabytes first: nothing a caller can catch. It initialises again, from the environment
// of that moment, in the child of every fork() (its own fork handler does it). So start_openmp()
// makes the runtime initialise at import with OMP_NUM_THREADS bounded to the processors when it
// asks for more (parallel.hpp, bounded_thread_counts), and puts the user's value back; and around
// every fork() it bounds the value of that moment again for the child's runtime, and puts it back
// in the parent and in the child. os.environ is never touched, and the C environment holds the
// user's value again before any other code runs. (Rewriting the variable for good, as latentmf
// once did, changed it for every library loaded afterwards and for every child process.)
//
// GCC's libgomp reads the variable when it is loaded, before this runs; it does not abort on
// large values, and latentmf's loops never ask for more threads than processors (resolve_threads).
// Windows builds use MSVC's runtime, and nothing is done there.
//
// What remains: for a moment at import and around each fork(), the environment holds the bounded
// value. Another thread reading OMP_NUM_THREADS at that very moment would see it (in C, getenv
// and setenv are not synchronised with each other anyway).
#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#if defined(_OPENMP) && !defined(_WIN32)
#include <omp.h>
#include <pthread.h>
#endif

#include "bindings.hpp"
#include "latentmf/parallel.hpp"

namespace latentmf::binding {

#if defined(_OPENMP) && !defined(_WIN32)
namespace {

constexpr const char* variable = "OMP_NUM_THREADS";

// The processors, counted without calling the OpenMP runtime (which would initialise it).
int processors() { return int(std::max(1u, std::thread::hardware_concurrency())); }

// Sets OMP_NUM_THREADS to its bounded value when it asks for more threads than processors, and
// then returns the value it had.
std::optional<std::string> bound_variable() {
  const char* value = std::getenv(variable);
  const auto bounded = value ? bounded_thread_counts(value, processors()) : std::nullopt;
  if (!bounded) return std::nullopt;
  std::string user(value);
  setenv(variable, bounded->c_str(), 1);
  return user;
}

void restore_variable(const std::optional<std::string>& user) {
  if (user) setenv(variable, user->c_str(), 1);
}

// The user's value while a fork() is under way, if it was bounded. Allocated once and never freed,
// so that a fork() while the process exits still finds it.
std::optional<std::string>& value_during_fork() {
  static auto* value = new std::optional<std::string>;
  return *value;
}

void before_fork() { value_during_fork() = bound_variable(); }
void after_fork() { restore_variable(value_during_fork()); }

}  // namespace

void start_openmp() {
  static const bool started = [] {
    const auto user = bound_variable();
    // The runtime initialises now, reading the bounded value, and registers its fork handlers.
    omp_get_max_threads();
    restore_variable(user);
    // Registered after the runtime's: the prepare handler runs before the runtime's, the child
    // handler after the runtime's re-initialisation. Each fork() bounds the value of its moment
    // (the user may have changed it since the import) and puts that value back.
    pthread_atfork(before_fork, after_fork, after_fork);
    return true;
  }();
  (void)started;
}
#else
void start_openmp() {}
#endif

}  // namespace latentmf::binding
