/* Kronecker entry points against dense computations in plain C. */
#include <bdlcore.h>
#include <stdlib.h>

#include "check.h"
#include "dense.h"

/* Independent dense computations carry O(n·ε·κ) error; the test matrices have κ < 1e4. */
#define DENSE_TOLERANCE 1e-9
/* LAPACK-style bound on ‖M·Y − X‖ / (‖M‖·‖Y‖·n·ε). */
#define SCALED_RESIDUAL_LIMIT 100.0

typedef struct { int nb, na, rank_b, rank_a; double scale, delta; } kron_case;

static const kron_case cases[] = {
    {1, 1, 1, 1, 1.0, 0.0},  {1, 4, 1, 4, 2.0, 0.1}, {3, 2, 3, 2, 1.0, 0.0},
    {5, 7, 5, 7, 0.7, 0.3},  {6, 5, 2, 3, 1.3, 0.5}, {4, 4, 4, 4, 1.0, -0.05},
};

static double norm2(const double *x, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += x[i] * x[i];
  return sqrt(s);
}

static void run_case(const kron_case *c, int index) {
  int nb = c->nb, na = c->na, n = nb * na, k = 3;
  double *b = malloc(sizeof(double) * nb * nb), *a = malloc(sizeof(double) * na * na);
  random_spd(b, nb, c->rank_b, c->rank_b == nb ? 0.5 : 0);
  random_spd(a, na, c->rank_a, c->rank_a == na ? 0.5 : 0);
  double *m = malloc(sizeof(double) * n * n), *l = malloc(sizeof(double) * n * n);
  dense_kron(m, b, nb, a, na, c->scale, c->delta);
  memcpy(l, m, sizeof(double) * n * n);
  double reference = cholesky_logdet(l, n);

  double logdet = 0;
  CHECK(bdl_kron_logdet(b, nb, a, na, c->scale, c->delta, &logdet) == BDL_OK, "case %d: %s", index, bdl_last_error_message());
  CHECK(max_relative_error(&logdet, &reference, 1) < DENSE_TOLERANCE, "case %d: logdet %.17g vs dense %.17g", index, logdet, reference);

  double *x = malloc(sizeof(double) * n * k), *y = malloc(sizeof(double) * n * k), *r = malloc(sizeof(double) * n);
  for (int i = 0; i < n * k; ++i) x[i] = normal01();
  CHECK(bdl_kron_solve(b, nb, a, na, c->scale, c->delta, x, k, y) == BDL_OK, "case %d: %s", index, bdl_last_error_message());
  double norm_m = 0;
  for (int i = 0; i < n * n; ++i) norm_m = fmax(norm_m, fabs(m[i]));
  for (int t = 0; t < k; ++t) {
    matvec(m, y + t * n, r, n);
    for (int i = 0; i < n; ++i) r[i] -= x[t * n + i];
    double scaled = norm2(r, n) / (norm_m * n * norm2(y + t * n, n) * n * 2.220446049250313e-16);
    CHECK(scaled < SCALED_RESIDUAL_LIMIT, "case %d rhs %d: scaled residual %g", index, t, scaled);
  }

  double *diag = malloc(sizeof(double) * n), *expected = malloc(sizeof(double) * n);
  CHECK(bdl_kron_diagonal(b, nb, a, na, c->scale, c->delta, 1.0, diag) == BDL_OK, "case %d", index);
  for (int i = 0; i < n; ++i) expected[i] = m[i * n + i];
  CHECK(max_relative_error(diag, expected, n) < DENSE_TOLERANCE, "case %d: diag(M)", index);
  CHECK(bdl_kron_diagonal(b, nb, a, na, c->scale, c->delta, -1.0, diag) == BDL_OK, "case %d", index);
  inverse_diagonal(l, expected, n);
  CHECK(max_relative_error(diag, expected, n) < DENSE_TOLERANCE, "case %d: diag(M^-1)", index);

  /* The handle gives the same numbers as the one-shot calls, and works in place. */
  bdl_kron_factor *factor = NULL;
  CHECK(bdl_kron_factor_create(b, nb, a, na, &factor) == BDL_OK, "case %d: %s", index, bdl_last_error_message());
  int64_t got_nb = 0, got_na = 0;
  CHECK(bdl_kron_factor_shape(factor, &got_nb, &got_na) == BDL_OK && got_nb == nb && got_na == na, "shape");
  double handle_logdet = 0;
  CHECK(bdl_kron_factor_logdet(factor, c->scale, c->delta, &handle_logdet) == BDL_OK && handle_logdet == logdet,
        "case %d: handle logdet %.17g vs %.17g", index, handle_logdet, logdet);
  double *in_place = malloc(sizeof(double) * n * k);
  memcpy(in_place, x, sizeof(double) * n * k);
  CHECK(bdl_kron_factor_apply_power(factor, c->scale, c->delta, -1.0, in_place, k, in_place, (int64_t)n * k) == BDL_OK, "in place");
  CHECK(max_relative_error(in_place, y, (size_t)n * k) < DENSE_TOLERANCE, "case %d: in-place solve", index);
  CHECK(bdl_kron_factor_apply_power(factor, c->scale, c->delta, 1.0, x, 1, in_place, n) == BDL_OK, "multiply");
  matvec(m, x, r, n);
  CHECK(max_relative_error(in_place, r, n) < DENSE_TOLERANCE, "case %d: M·x", index);
  double *beta = malloc(sizeof(double) * nb), *alpha = malloc(sizeof(double) * na);
  CHECK(bdl_kron_factor_eigenvalues(factor, beta, nb, alpha, na) == BDL_OK, "eigenvalues");
  double trace_b = 0, sum_beta = 0;
  for (int i = 0; i < nb; ++i) { trace_b += b[i * nb + i]; sum_beta += beta[i]; }
  CHECK(fabs(trace_b - sum_beta) < 1e-12 * fmax(1, trace_b), "case %d: Σβ = tr B", index);
  bdl_kron_factor_free(factor);

  free(b); free(a); free(m); free(l); free(x); free(y); free(r); free(diag); free(expected);
  free(in_place); free(beta); free(alpha);
}

int main(void) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) run_case(&cases[i], (int)i);
  CHECK(bdl_debug_live_handles() == 0, "%lld handles leaked", (long long)bdl_debug_live_handles());
  return check_summary("test_kron");
}
