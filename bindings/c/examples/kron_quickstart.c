/* bdlcore from C: a Kronecker-factored posterior precision P = h·B⊗A + δI for one layer
 * (B: output-gradient factor, A: input-activation factor), its log-determinant, marginal
 * variances diag(P⁻¹), and a solve — without forming the 6 × 6 matrix.
 *
 *   cc kron_quickstart.c -Iinclude -L.build/release -lbdlcore -o kron_quickstart
 */
#include <bdlcore.h>
#include <stdio.h>

int main(void) {
  const double B[2 * 2] = {2.0, 0.5,
                           0.5, 1.0};
  const double A[3 * 3] = {3.0, 1.0, 0.0,
                           1.0, 2.0, 0.2,
                           0.0, 0.2, 1.0};
  const double h = 1.0, delta = 0.1; /* h = 1/σ², δ = prior precision */

  double logdet;
  bdl_status status = bdl_kron_logdet(B, 2, A, 3, h, delta, &logdet);
  if (status != BDL_OK) {
    fprintf(stderr, "bdl_kron_logdet: %s: %s\n", bdl_status_string(status), bdl_last_error_message());
    return 1;
  }
  printf("log det P = %.6f\n", logdet);

  double variances[2 * 3]; /* diag(P⁻¹) as a 2 × 3 matrix, like the weight it belongs to */
  status = bdl_kron_diagonal(B, 2, A, 3, h, delta, -1.0, variances);
  if (status != BDL_OK) {
    fprintf(stderr, "bdl_kron_diagonal: %s\n", bdl_last_error_message());
    return 1;
  }
  printf("posterior variances: %.4f %.4f %.4f / %.4f %.4f %.4f\n", variances[0], variances[1],
         variances[2], variances[3], variances[4], variances[5]);

  /* Errors are statuses with a message, never a crash: A is not symmetric here. */
  const double bad[3 * 3] = {3.0, 1.0, 0.0, 9.0, 2.0, 0.2, 0.0, 0.2, 1.0};
  status = bdl_kron_logdet(B, 2, bad, 3, h, delta, &logdet);
  printf("with a bad factor: %s (%s)\n", bdl_status_string(status), bdl_last_error_message());
  return status == BDL_NOT_POSITIVE_DEFINITE ? 0 : 1;
}
