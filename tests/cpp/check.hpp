// A minimal test framework for the core's tests: TEST_CASE registers a function, the CHECK macros
// record a failure (file, line, what was compared, the context) and let the case go on, REQUIRE
// ends the case. check.cpp holds the registry and main().
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace latentmf::test {

using Body = void (*)();

struct Registration {
  Registration(const char* name, Body body);
};

// Records a failed check of the running case.
void fail(const char* file, int line, const std::string& what);

// Thrown by REQUIRE to end the running case after its failure is recorded.
struct Stop {};

// Names what the checks made during its lifetime are about (a level, a dtype, a shape); failures
// print the enclosing contexts.
class Context {
 public:
  explicit Context(std::string text);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
};

template <class T>
std::string show(const T& value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  return out.str();
}

// |actual - expected| <= tolerance max(1, |expected|): relative for large values, absolute near 0.
inline bool near(double actual, double expected, double tolerance) {
  return std::abs(actual - expected) <= tolerance * std::max(1.0, std::abs(expected));
}

// Whether two arrays hold the same bits (what "bit-identical" promises: 0 and -0 differ).
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

}  // namespace latentmf::test

#define LATENTMF_TEST_JOIN2(a, b) a##b
#define LATENTMF_TEST_JOIN(a, b) LATENTMF_TEST_JOIN2(a, b)

// TEST_CASE(name) { body }: a test case; names must be unique across the test files.
#define TEST_CASE(name)                                                                            \
  static void name();                                                                              \
  static const ::latentmf::test::Registration LATENTMF_TEST_JOIN(registered_, name)(#name, &name); \
  static void name()

// CONTEXT(stream expression): what the checks of the enclosing block are about.
#define CONTEXT(...)                                                             \
  const ::latentmf::test::Context LATENTMF_TEST_JOIN(context_, __LINE__)([&] {  \
    std::ostringstream text_;                                                    \
    text_ << __VA_ARGS__;                                                        \
    return text_.str();                                                          \
  }())

#define CHECK(condition) \
  ((condition) ? void() : ::latentmf::test::fail(__FILE__, __LINE__, "CHECK(" #condition ")"))

#define REQUIRE(condition)                                                       \
  do {                                                                           \
    if (!(condition)) {                                                          \
      ::latentmf::test::fail(__FILE__, __LINE__, "REQUIRE(" #condition ")");     \
      throw ::latentmf::test::Stop{};                                            \
    }                                                                            \
  } while (false)

#define CHECK_EQ(actual, expected)                                                                          \
  do {                                                                                                      \
    const auto& actual_ = (actual);                                                                         \
    const auto& expected_ = (expected);                                                                     \
    if (!(actual_ == expected_))                                                                            \
      ::latentmf::test::fail(__FILE__, __LINE__,                                                            \
                             "CHECK_EQ(" #actual ", " #expected "): " + ::latentmf::test::show(actual_) +   \
                                 " != " + ::latentmf::test::show(expected_));                               \
  } while (false)

// CHECK_NEAR(actual, expected, tolerance): see latentmf::test::near.
#define CHECK_NEAR(actual, expected, tolerance)                                                              \
  do {                                                                                                       \
    const double actual_ = double(actual), expected_ = double(expected);                                     \
    if (!::latentmf::test::near(actual_, expected_, tolerance))                                              \
      ::latentmf::test::fail(__FILE__, __LINE__,                                                             \
                             "CHECK_NEAR(" #actual ", " #expected "): " + ::latentmf::test::show(actual_) +  \
                                 " is not within " + ::latentmf::test::show(tolerance) + " of " +            \
                                 ::latentmf::test::show(expected_));                                         \
  } while (false)

// CHECK_THROWS(Exception, statement, text): the statement throws Exception (or a subclass) whose
// what() contains `text`.
#define CHECK_THROWS(Exception, statement, text)                                                           \
  do {                                                                                                     \
    const std::string text_ = (text);                                                                      \
    try {                                                                                                  \
      statement;                                                                                           \
      ::latentmf::test::fail(__FILE__, __LINE__,                                                           \
                             "CHECK_THROWS(" #Exception ", " #statement "): nothing was thrown");          \
    } catch (const Exception& error_) {                                                                    \
      if (std::string(error_.what()).find(text_) == std::string::npos)                                     \
        ::latentmf::test::fail(__FILE__, __LINE__,                                                         \
                               "CHECK_THROWS(" #Exception ", " #statement "): the message '" +             \
                                   std::string(error_.what()) + "' lacks '" + text_ + "'");                \
    }                                                                                                      \
  } while (false)
