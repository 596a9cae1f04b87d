// The registry of test cases and the runner (see check.hpp).
//
//   latentmf_core_tests            runs every case
//   latentmf_core_tests WORD ...   runs the cases whose name contains one of the words
//   latentmf_core_tests --list     prints the names
//
// Exits with 1 when a check failed or a case threw, 0 otherwise (CTest reads the status).
#include "check.hpp"

#include <chrono>
#include <cstdio>
#include <exception>
#include <set>
#include <string>
#include <vector>

namespace latentmf::test {
namespace {

struct Case {
  std::string name;
  Body body;
};

std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

// The contexts of the running case, outermost first, and its failures. The cases run one at a
// time on the main thread; a check made on another thread is the case's own concern.
std::vector<std::string> contexts;
int failures = 0;

bool selected(const std::string& name, const std::vector<std::string>& words) {
  if (words.empty()) return true;
  for (const auto& word : words)
    if (name.find(word) != std::string::npos) return true;
  return false;
}

// Runs one case; returns whether it passed.
bool run(const Case& c) {
  const int before = failures;
  const auto start = std::chrono::steady_clock::now();
  try {
    c.body();
  } catch (const Stop&) {
  } catch (const std::exception& error) {
    fail("(case)", 0, std::string("unexpected exception: ") + error.what());
  } catch (...) {
    fail("(case)", 0, "unexpected exception of an unknown type");
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const bool passed = failures == before;
  std::printf("[%s] %s (%.2f s)\n", passed ? " ok " : "FAIL", c.name.c_str(), seconds);
  std::fflush(stdout);
  return passed;
}

}  // namespace

Registration::Registration(const char* name, Body body) { registry().push_back({name, body}); }

void fail(const char* file, int line, const std::string& what) {
  ++failures;
  std::string where;
  for (const auto& context : contexts) where += (where.empty() ? "" : ", ") + context;
  std::printf("  %s:%d: %s%s%s\n", file, line, what.c_str(), where.empty() ? "" : "\n    in ", where.c_str());
  std::fflush(stdout);
}

Context::Context(std::string text) { contexts.push_back(std::move(text)); }
Context::~Context() { contexts.pop_back(); }

}  // namespace latentmf::test

int main(int argc, char** argv) {
  using namespace latentmf::test;
  std::vector<std::string> words(argv + 1, argv + argc);
  const bool list = !words.empty() && words[0] == "--list";
  std::set<std::string> names;
  for (const auto& c : registry())
    if (!names.insert(c.name).second) {
      std::printf("two test cases are named %s\n", c.name.c_str());
      return 1;
    }
  int ran = 0, failed = 0;
  for (const auto& c : registry()) {
    if (list) {
      std::printf("%s\n", c.name.c_str());
    } else if (selected(c.name, words)) {
      ++ran;
      failed += run(c) ? 0 : 1;
    }
  }
  if (list) return 0;
  std::printf("%d test cases, %d failed\n", ran, failed);
  return ran > 0 && failed == 0 ? 0 : 1;
}
