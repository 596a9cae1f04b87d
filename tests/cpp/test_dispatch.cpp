// The choice of instruction-set level: which levels can be selected, and selecting one while other
// threads run kernels through the active table (under ThreadSanitizer in .ci/sanitize, which
// reports the race a plain variable would be).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "check.hpp"
#include "latentmf/compressed.hpp"
#include "latentmf/dispatch.hpp"
#include "latentmf/errors.hpp"
#include "problems.hpp"

namespace latentmf::test {
namespace {

TEST_CASE(only_compiled_levels_this_cpu_runs_can_be_selected) {
  const auto compiled = compiled_isas();
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512}) {
    CONTEXT(isa_name(isa));
    const bool is_compiled = std::find(compiled.begin(), compiled.end(), isa) != compiled.end();
    const Isa before = active_isa();
    if (!is_compiled) {
      CHECK_THROWS(InvalidArgument, select_active_isa(isa), "is not compiled into this build");
      CHECK(active_isa() == before);
    } else if (!cpu_supports(isa)) {
      CHECK_THROWS(InvalidArgument, select_active_isa(isa), "is compiled in but this CPU cannot run it");
      CHECK(active_isa() == before);
    } else {
      select_active_isa(isa);
      CHECK(active_isa() == isa);
      CHECK(&active_kernels<float>() == &kernels<float>(isa));
      CHECK(&active_kernels<double>() == &kernels<double>(isa));
    }
  }
  select_active_isa(best_isa());
  CHECK(isa_from_name("generic") == Isa::generic);
  CHECK_THROWS(InvalidArgument, isa_from_name("sse9"),
               "unknown or not compiled instruction-set level 'sse9'; this build has: generic");
}

TEST_CASE(selecting_a_level_while_another_thread_runs_kernels_is_race_free) {
  const auto levels = runnable_isas();
  const auto r = random_ratings<double>(50, 40, 500, 1);
  auto m = random_model<double>(50, 40, 16, true, false, 2);
  const RatingsIndex<double> index(r.coo(), 1);
  // The objective at each level (levels round differently: each call must give one of these).
  std::vector<double> at_level;
  for (Isa isa : levels)
    at_level.push_back(kernels<double>(isa).objective(index, m.factors(), m.biases(), 1).squared_errors);
  std::atomic<bool> done{false};
  std::thread selector([&] {
    for (std::size_t i = 0; !done.load(); ++i) select_active_isa(levels[i % levels.size()]);
  });
  int unexpected = 0;
  for (int call = 0; call < 2000; ++call) {
    const double value = active_kernels<double>().objective(index, m.factors(), m.biases(), 1).squared_errors;
    unexpected += std::find(at_level.begin(), at_level.end(), value) == at_level.end() ? 1 : 0;
  }
  done.store(true);
  selector.join();
  CHECK_EQ(unexpected, 0);
  select_active_isa(best_isa());
}

}  // namespace
}  // namespace latentmf::test
