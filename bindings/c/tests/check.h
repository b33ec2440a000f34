/* A minimal test harness for the C tests: CHECK records a failure with its line and goes on;
 * check_summary() prints the closing line "N passed, N failed" and returns the exit code. */
#ifndef BDL_C_CHECK_H
#define BDL_C_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int checks_passed, checks_failed;

#define CHECK(condition, ...)                                              \
  do {                                                                     \
    if (condition) {                                                       \
      ++checks_passed;                                                     \
    } else {                                                               \
      ++checks_failed;                                                     \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #condition); \
      fprintf(stderr, __VA_ARGS__);                                        \
      fprintf(stderr, "\n");                                               \
    }                                                                      \
  } while (0)

/* The call returned `expected` and the last error message contains `fragment`. */
#define CHECK_STATUS(call, expected, fragment)                                          \
  do {                                                                                  \
    bdl_status status_ = (call);                                                        \
    const char *message_ = bdl_last_error_message();                                    \
    CHECK(status_ == (expected) && strstr(message_, (fragment)) != NULL,                \
          "%s returned %d (%s), message \"%s\"; expected %d with \"%s\"", #call, status_, \
          bdl_status_string(status_), message_, (int)(expected), (fragment));           \
  } while (0)

static inline int check_summary(const char *name) {
  printf("%s: %d passed, %d failed\n", name, checks_passed, checks_failed);
  return checks_failed == 0 ? 0 : 1;
}

/* max_i |a_i - b_i| / max(1, |b_i|) */
static inline double max_relative_error(const double *a, const double *b, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    double scale = fabs(b[i]) > 1 ? fabs(b[i]) : 1;
    double error = fabs(a[i] - b[i]) / scale;
    if (error > worst || error != error) worst = error;
  }
  return worst;
}

#endif
