/* Bad input everywhere in the ABI: the documented status, a message naming the argument, no
 * crash, and no write to any output on failure. */
#include <bdlcore.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

#define SENTINEL 12345.678

static int untouched(const double *buffer, int n) {
  for (int i = 0; i < n; ++i)
    if (buffer[i] != SENTINEL) return 0;
  return 1;
}

static void fill(double *buffer, int n) {
  for (int i = 0; i < n; ++i) buffer[i] = SENTINEL;
}

int main(void) {
  const double b[4] = {2, 0.5, 0.5, 1};
  const double a[9] = {3, 1, 0, 1, 2, 0.2, 0, 0.2, 1};
  const double x[6] = {1, 2, 3, 4, 5, 6};
  double out[6];

  /* NULL pointers with non-zero sizes. */
  fill(out, 1);
  CHECK_STATUS(bdl_kron_logdet(NULL, 2, a, 3, 1, 0.1, out), BDL_INVALID_ARGUMENT, "B is NULL");
  CHECK_STATUS(bdl_kron_logdet(b, 2, NULL, 3, 1, 0.1, out), BDL_INVALID_ARGUMENT, "A is NULL");
  CHECK_STATUS(bdl_kron_logdet(b, 2, a, 3, 1, 0.1, NULL), BDL_INVALID_ARGUMENT, "out_logdet is NULL");
  CHECK(untouched(out, 1), "no write on failure");
  fill(out, 6);
  CHECK_STATUS(bdl_kron_solve(b, 2, a, 3, 1, 0.1, NULL, 1, out), BDL_INVALID_ARGUMENT, "X is NULL");
  CHECK_STATUS(bdl_kron_solve(b, 2, a, 3, 1, 0.1, x, 1, NULL), BDL_INVALID_ARGUMENT, "out_Y is NULL");
  CHECK_STATUS(bdl_kron_diagonal(b, 2, a, 3, 1, 0.1, 1, NULL), BDL_INVALID_ARGUMENT, "out_diag is NULL");

  /* Negative, zero and overflowing sizes are rejected before any read. */
  CHECK_STATUS(bdl_kron_logdet(b, -2, a, 3, 1, 0.1, out), BDL_INVALID_ARGUMENT, "nb = -2");
  CHECK_STATUS(bdl_kron_logdet(b, 2, a, 0, 1, 0.1, out), BDL_INVALID_ARGUMENT, "na = 0");
  CHECK_STATUS(bdl_kron_logdet(b, INT64_C(1) << 62, a, 3, 1, 0.1, out), BDL_INVALID_ARGUMENT, "overflows");
  CHECK_STATUS(bdl_kron_logdet(b, INT64_C(3037000500), a, 3, 1, 0.1, out), BDL_INVALID_ARGUMENT, "overflows");
  CHECK_STATUS(bdl_kron_logdet(b, INT64_C(2000000000), a, 3, 1, 0.1, out), BDL_OUT_OF_MEMORY, "exceed");
  CHECK_STATUS(bdl_kron_solve(b, 2, a, 3, 1, 0.1, x, -1, out), BDL_INVALID_ARGUMENT, "k = -1");
  CHECK_STATUS(bdl_kron_solve(b, 2, a, 3, 1, 0.1, x, INT64_MAX / 4, out), BDL_INVALID_ARGUMENT, "overflows");
  CHECK(untouched(out, 6), "no write on failure");

  /* NaN/Inf inputs and invalid scalars. */
  double b_nan[4] = {2, 0.5, 0.5, NAN}, a_inf[9] = {3, 1, 0, 1, INFINITY, 0.2, 0, 0.2, 1};
  double x_nan[6] = {1, 2, NAN, 4, 5, 6};
  CHECK_STATUS(bdl_kron_logdet(b_nan, 2, a, 3, 1, 0.1, out), BDL_NON_FINITE_INPUT, "B: entry 3");
  CHECK_STATUS(bdl_kron_logdet(b, 2, a_inf, 3, 1, 0.1, out), BDL_NON_FINITE_INPUT, "A: entry 4");
  CHECK_STATUS(bdl_kron_solve(b, 2, a, 3, 1, 0.1, x_nan, 1, out), BDL_NON_FINITE_INPUT, "X: entry 2");
  CHECK_STATUS(bdl_kron_logdet(b, 2, a, 3, -1, 0.1, out), BDL_INVALID_ARGUMENT, "scale = -1");
  CHECK_STATUS(bdl_kron_logdet(b, 2, a, 3, NAN, 0.1, out), BDL_INVALID_ARGUMENT, "scale = nan");
  CHECK_STATUS(bdl_kron_logdet(b, 2, a, 3, 1, INFINITY, out), BDL_INVALID_ARGUMENT, "delta = inf");
  CHECK_STATUS(bdl_kron_diagonal(b, 2, a, 3, 1, 0.1, NAN, out), BDL_INVALID_ARGUMENT, "exponent = nan");

  /* Non-symmetric, indefinite, and singular-with-δ ≤ 0 factors. */
  const double b_asym[4] = {2, 0.5, 0.7, 1}, b_indef[4] = {1, 2, 2, 1}, b_rank1[4] = {1, 1, 1, 1};
  CHECK_STATUS(bdl_kron_logdet(b_asym, 2, a, 3, 1, 0.1, out), BDL_NOT_POSITIVE_DEFINITE, "B: entry (1, 0)");
  CHECK_STATUS(bdl_kron_logdet(b_indef, 2, a, 3, 1, 0.1, out), BDL_NOT_POSITIVE_DEFINITE, "B: eigenvalue -1");
  CHECK_STATUS(bdl_kron_logdet(b, 2, b_indef, 2, 1, 0.1, out), BDL_NOT_POSITIVE_DEFINITE, "A: eigenvalue");
  CHECK_STATUS(bdl_kron_logdet(b_rank1, 2, a, 3, 1, 0, out), BDL_NOT_POSITIVE_DEFINITE, "delta > 0");
  CHECK_STATUS(bdl_kron_solve(b_rank1, 2, a, 3, 1, -0.5, x, 1, out), BDL_NOT_POSITIVE_DEFINITE, "delta");
  CHECK(untouched(out, 6), "no write on failure");
  double ok_logdet = 0;
  CHECK_STATUS(bdl_kron_logdet(b_rank1, 2, a, 3, 1, 0.1, &ok_logdet), BDL_OK, "");
  CHECK(isfinite(ok_logdet), "a rank-deficient factor with delta > 0 is fine");

  /* Handles: NULL, garbage, freed, capacity too small. */
  bdl_kron_factor *factor = NULL;
  CHECK_STATUS(bdl_kron_factor_create(b, 2, a, 3, NULL), BDL_INVALID_ARGUMENT, "out_factor is NULL");
  CHECK_STATUS(bdl_kron_factor_create(b_indef, 2, a, 3, &factor), BDL_NOT_POSITIVE_DEFINITE, "B:");
  CHECK(factor == NULL, "no handle on failure");
  CHECK(bdl_debug_live_handles() == 0, "no handle leaked on failure");
  CHECK_STATUS(bdl_kron_factor_create(b, 2, a, 3, &factor), BDL_OK, "");
  CHECK(bdl_debug_live_handles() == 1, "one live handle");
  fill(out, 6);
  CHECK_STATUS(bdl_kron_factor_diagonal(factor, 1, 0.1, 1, out, 5), BDL_SHAPE_MISMATCH, "capacity 5");
  CHECK_STATUS(bdl_kron_factor_apply_power(factor, 1, 0.1, -1, x, 1, out, 3), BDL_SHAPE_MISMATCH, "capacity 3");
  CHECK_STATUS(bdl_kron_factor_eigenvalues(factor, out, 1, out + 2, 3), BDL_SHAPE_MISMATCH, "out_beta");
  CHECK(untouched(out, 6), "no write on failure");
  CHECK_STATUS(bdl_kron_factor_logdet(NULL, 1, 0.1, out), BDL_INVALID_ARGUMENT, "factor is NULL");
  CHECK_STATUS(bdl_kron_factor_logdet((bdl_kron_factor *)(uintptr_t)0x1234560, 1, 0.1, out), BDL_INVALID_ARGUMENT, "not a live");
  bdl_kron_factor_free(factor);
  CHECK(bdl_debug_live_handles() == 0, "freed");
  CHECK_STATUS(bdl_kron_factor_logdet(factor, 1, 0.1, out), BDL_INVALID_ARGUMENT, "not a live");
  bdl_kron_factor_free(factor); /* a double free is reported, not fatal */
  CHECK(strstr(bdl_last_error_message(), "nothing was freed") != NULL, "double free message: %s", bdl_last_error_message());
  bdl_kron_factor_free(NULL);

  /* Status strings and info. */
  CHECK(strcmp(bdl_status_string(BDL_OK), "ok") == 0, "ok text");
  CHECK(strcmp(bdl_status_string(BDL_INTERNAL), "internal error") == 0, "internal text");
  CHECK(strcmp(bdl_status_string(-3), "unknown status") == 0, "unknown text");
  CHECK(bdl_version_number() == BDL_VERSION_MAJOR * 10000 + BDL_VERSION_MINOR * 100 + BDL_VERSION_PATCH, "version number");
  char expected_version[32];
  snprintf(expected_version, sizeof expected_version, "%d.%d.%d", BDL_VERSION_MAJOR, BDL_VERSION_MINOR, BDL_VERSION_PATCH);
  CHECK(strcmp(bdl_version_string(), expected_version) == 0, "version string %s", bdl_version_string());

  CHECK(bdl_debug_live_handles() == 0, "%lld handles leaked", (long long)bdl_debug_live_handles());
  return check_summary("test_errors");
}
