// Thread counts: the value of OMP_NUM_THREADS the extension starts the OpenMP runtime with when the
// user's asks for more threads than there are processors (see cpp/bindings/openmp.cpp), and the
// requests for threads that the kernels resolve (bad ones: test_checks.cpp).
#include <optional>
#include <string>

#include "check.hpp"
#include "latentmf/parallel.hpp"

namespace latentmf::test {
namespace {

std::string shown(const std::optional<std::string>& value) { return value ? "'" + *value + "'" : "(none)"; }

TEST_CASE(omp_num_threads_above_the_processors_is_lowered_to_them) {
  struct Case {
    const char* value;
    std::optional<std::string> bounded;
  };
  const Case cases[] = {
      {"100000000", "4"},    {"5", "4"},           {"99999999999999999999", "4"}, {" 9 , 2", "4,2"},
      {"2,100000000", "2,4"}, {"0009", "4"},        {"4", std::nullopt},           {"3", std::nullopt},
      {"0004", std::nullopt}, {"2,4", std::nullopt}, {"", std::nullopt},            {" ", std::nullopt},
      {"many", std::nullopt}, {"4,x", std::nullopt}, {"9,", std::nullopt},          {"-1", std::nullopt},
      {"+9", std::nullopt},   {"9.5", std::nullopt},
  };
  for (const Case& c : cases) {
    CONTEXT("OMP_NUM_THREADS='" << c.value << "'");
    CHECK_EQ(shown(bounded_thread_counts(c.value, 4)), shown(c.bounded));
  }
}

TEST_CASE(thread_requests_resolve_to_the_processors_there_are) {
  CHECK_EQ(resolve_threads(0), available_threads());
  CHECK_EQ(resolve_threads(1), 1);
  CHECK_EQ(resolve_threads(1 << 30), processor_count());
  CHECK(available_threads() >= 1 && available_threads() <= processor_count());
}

}  // namespace
}  // namespace latentmf::test
