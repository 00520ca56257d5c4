// A tiny self-contained test harness: TEST(name) registers a case, CHECK* record failures.
#ifndef SLICER_TESTS_HARNESS_HPP_
#define SLICER_TESTS_HARNESS_HPP_

#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace slicer_test {

struct Case {
  const char* name;
  std::function<void()> body;
};

inline std::vector<Case>& Registry() {
  static std::vector<Case> cases;
  return cases;
}

inline int& Failures() {
  static int failures = 0;
  return failures;
}

struct Registrar {
  Registrar(const char* name, std::function<void()> body) {
    Registry().push_back(Case{name, std::move(body)});
  }
};

inline void Fail(const char* file, int line, const std::string& what) {
  ++Failures();
  std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
}

// Runs every case (or those whose name contains argv[1]); returns the process exit code.
inline int RunAll(int argc, char** argv) {
  int run = 0;
  for (const Case& c : Registry()) {
    if (argc > 1 && std::strstr(c.name, argv[1]) == nullptr) continue;
    const int before = Failures();
    c.body();
    ++run;
    std::printf("[%s] %s\n", Failures() == before ? "  OK  " : "FAILED", c.name);
  }
  std::printf("%d cases, %d failed checks\n", run, Failures());
  return Failures() == 0 && run > 0 ? 0 : 1;
}

}  // namespace slicer_test

#define SLICER_TEST_CONCAT_(a, b) a##b
#define SLICER_TEST_CONCAT(a, b) SLICER_TEST_CONCAT_(a, b)
#define TEST(name)                                                                   \
  static void name();                                                                \
  static ::slicer_test::Registrar SLICER_TEST_CONCAT(registrar_, name)(#name, name); \
  static void name()

#define CHECK(cond)                                              \
  do {                                                           \
    if (!(cond)) ::slicer_test::Fail(__FILE__, __LINE__, #cond); \
  } while (0)

#define CHECK_EQ(a, b)                                                                    \
  do {                                                                                    \
    const auto va_ = (a);                                                                 \
    const auto vb_ = (b);                                                                 \
    if (!(va_ == vb_)) {                                                                  \
      ::slicer_test::Fail(__FILE__, __LINE__,                                             \
                          std::string(#a " == " #b " (") + std::to_string(va_) + " vs " + \
                              std::to_string(vb_) + ")");                                 \
    }                                                                                     \
  } while (0)

#define TEST_MAIN() \
  int main(int argc, char** argv) { return ::slicer_test::RunAll(argc, argv); }

#endif  // SLICER_TESTS_HARNESS_HPP_
