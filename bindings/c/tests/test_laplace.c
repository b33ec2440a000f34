#define _POSIX_C_SOURCE 200809L  /* mkstemp, truncate */
/* Laplace posteriors and calibration metrics through the C ABI: the evidence against the dense
 * formula built from the curvature's own matrix, gradients against finite differences, the
 * optimum's stationarity, predictives, sampling, save/load, and bad input. */
#include <bdlcore.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "dense.h"

static const bdl_layer_spec MLP[] = {
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 3, .out_features = 4},
    {.kind = BDL_LAYER_TANH},
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 4, .out_features = 3},
};
static const int64_t INPUT[] = {3};
enum { P = 3 * 4 + 4 + 4 * 3 + 3, N = 8, C = 3, TENSORS = 4 };

static int progress_calls;
static int64_t progress_done;
static void on_progress(int64_t done, int64_t total, void *user_data) {
  ++progress_calls;
  progress_done = done;
  *(int64_t *)user_data = total;
}

/* Σ cross-entropy of the model's outputs. */
static double cross_entropy(const bdl_model *model, const double *X, const double *y) {
  double f[N * C], total = 0;
  bdl_model_forward(model, X, N, f, N * C);
  for (int n = 0; n < N; ++n) {
    double largest = f[n * C], sum = 0;
    for (int c = 1; c < C; ++c) largest = fmax(largest, f[n * C + c]);
    for (int c = 0; c < C; ++c) sum += exp(f[n * C + c] - largest);
    total += largest + log(sum) - f[n * C + (int)y[n]];
  }
  return total;
}

static bdl_laplace *fit(bdl_model *model, const double *X, const double *y, int32_t structure, int32_t subset) {
  bdl_laplace_params params;
  bdl_laplace_params_init(&params);
  params.structure = structure;
  params.subset = subset;
  params.batch_size = 3;
  bdl_laplace *laplace = NULL;
  int64_t total = 0;
  progress_calls = 0;
  CHECK_STATUS(bdl_laplace_fit(model, X, N, y, &params, on_progress, &total, &laplace), BDL_OK, "");
  CHECK(progress_calls == 3 && progress_done == N && total == N, "progress: %d calls, last %lld of %lld", progress_calls, (long long)progress_done, (long long)total);
  return laplace;
}

int main(void) {
  bdl_model *model = NULL;
  CHECK_STATUS(bdl_model_create(MLP, 3, INPUT, 1, 5, &model), BDL_OK, "");
  double X[N * 3], y[N], theta[P];
  for (int i = 0; i < N * 3; ++i) X[i] = 1.3 * cos(1.7 * i);
  for (int i = 0; i < N; ++i) y[i] = i % C;
  bdl_model_get_parameters(model, theta, P);
  const double loss = cross_entropy(model, X, y);

  /* The evidence of each structure equals the formula with the dense matrix of the same curvature:
   * −L − ½[log det(G + δI) − P log δ] − ½ δ‖θ‖² (classification, T = 1). */
  const int32_t structures[] = {BDL_LAPLACE_FULL, BDL_LAPLACE_DIAG, BDL_LAPLACE_KRON};
  const int32_t kinds[] = {BDL_CURVATURE_GGN, BDL_CURVATURE_DIAG_GGN, BDL_CURVATURE_KFAC};
  bdl_laplace *posteriors[3];
  for (int s = 0; s < 3; ++s) {
    posteriors[s] = fit(model, X, y, structures[s], BDL_SUBSET_ALL);
    bdl_curvature_params cp;
    bdl_curvature_params_init(&cp);
    cp.kind = kinds[s];
    bdl_curvature *curvature = NULL;
    CHECK_STATUS(bdl_curvature_fit(model, X, N, y, &cp, &curvature), BDL_OK, "");
    const double delta = 0.7;
    static double M[P * P];
    bdl_curvature_dense(curvature, 1, delta, M, P * P);
    double quadratic = 0;
    for (int i = 0; i < P; ++i) quadratic += theta[i] * theta[i];
    double expected = -loss - 0.5 * (cholesky_logdet(M, P) - P * log(delta)) - 0.5 * delta * quadratic;
    double value = 0;
    CHECK_STATUS(bdl_laplace_log_marginal_likelihood(posteriors[s], &delta, 1, NULL, &value), BDL_OK, "");
    CHECK(fabs(value - expected) < 1e-10 * fabs(expected), "structure %d: evidence %.15g vs %.15g", structures[s], value, expected);
    /* The same posterior from the curvature handle (a user's statistics). */
    bdl_laplace_params lp;
    bdl_laplace_params_init(&lp);
    bdl_laplace *from = NULL;
    CHECK_STATUS(bdl_laplace_from_curvature(curvature, theta, P, NULL, 0, loss, N, C, &lp, &from), BDL_OK, "");
    double again = 0;
    bdl_laplace_log_marginal_likelihood(from, &delta, 1, NULL, &again);
    CHECK(fabs(again - value) < 1e-12 * fabs(value), "structure %d: from curvature %.15g vs fit %.15g", structures[s], again, value);
    int32_t structure = 0;
    bdl_laplace_info(from, &structure, NULL, NULL, NULL, NULL, NULL);
    CHECK(structure == structures[s], "from curvature kind %d gives structure %d", kinds[s], structure);
    bdl_laplace_free(from);
    bdl_curvature_free(curvature);
  }

  /* Gradients with respect to log δ (per tensor) against central differences. */
  bdl_laplace *kron = posteriors[2];
  int64_t tensors = 0, first = -1;
  bdl_laplace_info(kron, NULL, NULL, NULL, NULL, &tensors, &first);
  CHECK(tensors == TENSORS && first == 0, "info: %lld tensors, first parameter %lld", (long long)tensors, (long long)first);
  double prior[TENSORS] = {0.5, 1.5, 0.8, 2.5}, grad[TENSORS], value = 0, grad_sigma = -1;
  CHECK_STATUS(bdl_laplace_log_marginal_likelihood_grad(kron, prior, TENSORS, NULL, &value, grad, TENSORS, &grad_sigma), BDL_OK, "");
  CHECK(grad_sigma == 0, "classification has no σ gradient");
  for (int k = 0; k < TENSORS; ++k) {
    double up[TENSORS], down[TENSORS], vu = 0, vd = 0;
    memcpy(up, prior, sizeof prior);
    memcpy(down, prior, sizeof prior);
    up[k] *= exp(1e-5);
    down[k] *= exp(-1e-5);
    bdl_laplace_log_marginal_likelihood(kron, up, TENSORS, NULL, &vu);
    bdl_laplace_log_marginal_likelihood(kron, down, TENSORS, NULL, &vd);
    double numeric = (vu - vd) / 2e-5;
    CHECK(fabs(grad[k] - numeric) < 1e-6 * fmax(1, fabs(numeric)), "∂/∂log δ_%d: %.10g vs %.10g", k, grad[k], numeric);
  }

  /* The optimum is stationary and no worse than the start. */
  double before = 0;
  bdl_laplace_log_marginal_likelihood(kron, NULL, 0, NULL, &before);
  bdl_evidence_optimum optimum;
  CHECK_STATUS(bdl_laplace_optimize_prior_precision(kron, BDL_PRIOR_LAYERWISE, 0, 0, 0, &optimum), BDL_OK, "");
  CHECK(optimum.converged == 1 && optimum.gradient_norm < 1e-8, "optimum: gradient norm %g after %lld iterations", optimum.gradient_norm, (long long)optimum.iterations);
  CHECK(optimum.log_marginal_likelihood >= before, "optimum %.15g below the start %.15g", optimum.log_marginal_likelihood, before);
  int64_t count = 0;
  double current[TENSORS];
  double mean_back = -1;
  int64_t mean_count = 0;
  CHECK_STATUS(bdl_laplace_hyperparameters(kron, current, TENSORS, &count, &mean_back, 1, &mean_count, NULL, NULL), BDL_OK, "");
  CHECK(count == TENSORS, "the optimum is stored: %lld prior values", (long long)count);
  CHECK(mean_count == 1 && mean_back == 0, "prior mean %g (%lld values)", mean_back, (long long)mean_count);
  CHECK_STATUS(bdl_laplace_hyperparameters(kron, current, 2, &count, NULL, 0, NULL, NULL, NULL), BDL_SHAPE_MISMATCH, "capacity");
  bdl_laplace_log_marginal_likelihood_grad(kron, NULL, 0, NULL, &value, grad, TENSORS, NULL);
  double norm = 0;
  for (int k = 0; k < TENSORS; ++k) norm += grad[k] * grad[k];
  CHECK(sqrt(norm) < 1e-8 && fabs(value - optimum.log_marginal_likelihood) < 1e-12 * fabs(value), "stored optimum: gradient norm %g", sqrt(norm));

  /* Predictives: probit probabilities are a softmax of scaled outputs; Σ_f is symmetric PSD. */
  double f[N * C], var[N * C * C], probs[N * C];
  CHECK_STATUS(bdl_laplace_functional_variance(kron, model, X, N, f, N * C, var, N * C * C), BDL_OK, "");
  CHECK_STATUS(bdl_laplace_predict(kron, model, X, N, BDL_LINK_PROBIT, 0, 0, probs, N * C), BDL_OK, "");
  for (int n = 0; n < N; ++n) {
    double scaled[C], largest = -INFINITY, total = 0, worst = 0;
    for (int c = 0; c < C; ++c) {
      scaled[c] = f[n * C + c] / sqrt(1 + 3.14159265358979323846 / 8 * var[(n * C + c) * C + c]);
      largest = fmax(largest, scaled[c]);
      CHECK(var[(n * C + c) * C + c] >= 0, "variance ≥ 0");
      for (int d = 0; d < C; ++d) worst = fmax(worst, fabs(var[(n * C + c) * C + d] - var[(n * C + d) * C + c]));
    }
    for (int c = 0; c < C; ++c) total += exp(scaled[c] - largest);
    for (int c = 0; c < C; ++c) {
      double expected = exp(scaled[c] - largest) / total;
      CHECK(fabs(probs[n * C + c] - expected) < 1e-14, "probit example %d class %d", n, c);
    }
    CHECK(worst < 1e-14, "Σ_f symmetric");
  }
  double mc1[N * C], mc2[N * C], bridge[N * C];
  CHECK_STATUS(bdl_laplace_predict(kron, model, X, N, BDL_LINK_MC, 500, 9, mc1, N * C), BDL_OK, "");
  CHECK_STATUS(bdl_laplace_predict(kron, model, X, N, BDL_LINK_MC, 500, 9, mc2, N * C), BDL_OK, "");
  CHECK(memcmp(mc1, mc2, sizeof mc1) == 0, "Monte-Carlo predictive is reproducible from its seed");
  CHECK_STATUS(bdl_laplace_predict(kron, model, X, N, BDL_LINK_BRIDGE, 0, 0, bridge, N * C), BDL_OK, "");
  CHECK_STATUS(bdl_laplace_predict_sampling(kron, model, X, N, 50, 3, 0, mc1, N * C, NULL, 0), BDL_OK, "");
  double rows = 0;
  for (int i = 0; i < N * C; ++i) rows += mc1[i] + bridge[i];
  CHECK(fabs(rows - 2 * N) < 1e-12, "probabilities sum to 1 per row");
  CHECK_STATUS(bdl_laplace_predict_regression(kron, model, X, N, 1, f, N * C, NULL, 0), BDL_WRONG_STATE, "regression posterior");

  /* Samples and the log density. */
  static double samples[4 * P];
  CHECK_STATUS(bdl_laplace_sample(kron, 4, 1, samples, 4 * P), BDL_OK, "");
  double at_mean = 0, at_sample = 0;
  CHECK_STATUS(bdl_laplace_log_prob(kron, theta, P, &at_mean), BDL_OK, "");
  CHECK_STATUS(bdl_laplace_log_prob(kron, samples, P, &at_sample), BDL_OK, "");
  CHECK(at_mean > at_sample, "the density peaks at θ*");

  /* Save and load: the same evidence; a model of another size and damaged files are refused. */
  char path[] = "/tmp/bdlcore-laplace-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  CHECK_STATUS(bdl_laplace_save(kron, path), BDL_OK, "");
  bdl_laplace *loaded = NULL;
  CHECK_STATUS(bdl_laplace_load(path, model, &loaded), BDL_OK, "");
  double a = 0, b = 0;
  bdl_laplace_log_marginal_likelihood(kron, NULL, 0, NULL, &a);
  bdl_laplace_log_marginal_likelihood(loaded, NULL, 0, NULL, &b);
  CHECK(a == b, "loaded evidence %.17g vs %.17g", b, a);
  bdl_model *other = NULL;
  const bdl_layer_spec small[] = {{.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 3, .out_features = 3}};
  bdl_model_create(small, 1, INPUT, 1, 0, &other);
  bdl_laplace *none = NULL;
  CHECK_STATUS(bdl_laplace_load(path, other, &none), BDL_SHAPE_MISMATCH, "parameters");
  CHECK_STATUS(bdl_laplace_functional_variance(kron, other, X, N, f, N * C, NULL, 0), BDL_SHAPE_MISMATCH, "parameters");
  CHECK(truncate(path, 100) == 0, "truncate");
  CHECK_STATUS(bdl_laplace_load(path, NULL, &none), BDL_CORRUPT_DATA, "");
  CHECK_STATUS(bdl_laplace_load("/nonexistent/posterior.bdl", NULL, &none), BDL_IO_ERROR, "cannot open");
  CHECK(none == NULL, "no handle on failure");
  unlink(path);

  /* Bad input leaves the posterior unchanged. */
  double zero = 0, nan_ = NAN, three[3] = {1, 1, 1}, unchanged = 0;
  CHECK_STATUS(bdl_laplace_set_hyperparameters(kron, &zero, 1, NULL, 0, 1, 1), BDL_INVALID_ARGUMENT, "must be > 0");
  CHECK_STATUS(bdl_laplace_set_hyperparameters(kron, &nan_, 1, NULL, 0, 1, 1), BDL_NON_FINITE_INPUT, "finite");
  CHECK_STATUS(bdl_laplace_set_hyperparameters(kron, three, 3, NULL, 0, 1, 1), BDL_SHAPE_MISMATCH, "prior precision has 3 values");
  CHECK_STATUS(bdl_laplace_set_hyperparameters(kron, NULL, 0, NULL, 0, -1, 1), BDL_INVALID_ARGUMENT, "sigma");
  CHECK_STATUS(bdl_laplace_set_hyperparameters(kron, NULL, 0, NULL, 0, 1, 0), BDL_INVALID_ARGUMENT, "temperature");
  bdl_laplace_log_marginal_likelihood(kron, NULL, 0, NULL, &unchanged);
  CHECK(unchanged == a, "failed calls changed nothing");
  CHECK_STATUS(bdl_laplace_log_marginal_likelihood(NULL, NULL, 0, NULL, &value), BDL_INVALID_ARGUMENT, "laplace is NULL");
  CHECK_STATUS(bdl_laplace_log_marginal_likelihood(kron, NULL, 0, NULL, NULL), BDL_INVALID_ARGUMENT, "out_value is NULL");
  CHECK_STATUS(bdl_laplace_log_marginal_likelihood_grad(kron, NULL, 0, NULL, NULL, grad, 2, NULL), BDL_SHAPE_MISMATCH, "capacity");
  CHECK_STATUS(bdl_laplace_optimize_prior_precision(kron, 7, 0, 0, 0, &optimum), BDL_INVALID_ARGUMENT, "prior_structure");
  CHECK_STATUS(bdl_laplace_predict(kron, model, X, N, 9, 0, 0, probs, N * C), BDL_INVALID_ARGUMENT, "link");
  CHECK_STATUS(bdl_laplace_predict(kron, model, X, N, BDL_LINK_PROBIT, 0, 0, probs, N), BDL_SHAPE_MISMATCH, "capacity");
  CHECK_STATUS(bdl_laplace_sample(kron, -1, 0, samples, P), BDL_INVALID_ARGUMENT, "n_samples");
  bdl_laplace_params params;
  bdl_laplace_params_init(&params);
  params.structure = 0;
  CHECK_STATUS(bdl_laplace_fit(model, X, N, y, &params, NULL, NULL, &none), BDL_INVALID_ARGUMENT, "structure");
  bdl_laplace_params_init(&params);
  params.struct_size = 3;
  CHECK_STATUS(bdl_laplace_fit(model, X, N, y, &params, NULL, NULL, &none), BDL_INVALID_ARGUMENT, "struct_size");
  bdl_laplace_params_init(&params);
  params.sigma_noise = 0;
  CHECK_STATUS(bdl_laplace_fit(model, X, N, y, &params, NULL, NULL, &none), BDL_INVALID_ARGUMENT, "sigma");

  /* Last layer: 4·3 + 3 parameters starting after the first layer. */
  bdl_laplace *last = fit(model, X, y, BDL_LAPLACE_FULL, BDL_SUBSET_LAST_LAYER);
  int64_t covered = 0;
  bdl_laplace_info(last, NULL, NULL, NULL, &covered, &tensors, &first);
  CHECK(covered == 15 && tensors == 2 && first == 16, "last layer: %lld parameters from %lld", (long long)covered, (long long)first);

  /* Calibration metrics on a hand-computed example. */
  const double p[] = {0.7, 0.2, 0.1, 0.1, 0.6, 0.3, 0.5, 0.25, 0.25, 0.2, 0.2, 0.6};
  const int64_t labels[] = {0, 2, 0, 2};
  double accuracy = 0, nll = 0, brier = 0, ece = 0;
  CHECK_STATUS(bdl_metrics_accuracy(p, 4, 3, labels, &accuracy), BDL_OK, "");
  CHECK_STATUS(bdl_metrics_nll(p, 4, 3, labels, &nll), BDL_OK, "");
  CHECK_STATUS(bdl_metrics_brier(p, 4, 3, labels, &brier), BDL_OK, "");
  CHECK_STATUS(bdl_metrics_ece(p, 4, 3, labels, 10, &ece), BDL_OK, "");
  CHECK(accuracy == 0.75, "accuracy %g", accuracy);
  CHECK(fabs(nll - -(log(0.7) + log(0.3) + log(0.5) + log(0.6)) / 4) < 1e-15, "nll %g", nll);
  const double expected_brier = (0.09 + 0.04 + 0.01 + 0.01 + 0.36 + 0.49 + 0.25 + 0.0625 + 0.0625 + 0.04 + 0.04 + 0.16) / 4;
  CHECK(fabs(brier - expected_brier) < 1e-15, "brier %g vs %g", brier, expected_brier);
  /* Confidences 0.7, 0.6, 0.5, 0.6 → bins (0.6, 0.7]: {0.7 ✓}, (0.5, 0.6]: {0.6 ✗, 0.6 ✓}, (0.4, 0.5]: {0.5 ✓}. */
  const double expected_ece = 0.25 * 0.3 + 0.5 * fabs(0.5 - 0.6) + 0.25 * 0.5;
  CHECK(fabs(ece - expected_ece) < 1e-15, "ece %g vs %g", ece, expected_ece);
  int64_t counts[10];
  CHECK_STATUS(bdl_metrics_reliability(p, 4, 3, labels, 10, counts, NULL, NULL), BDL_OK, "");
  CHECK(counts[6] == 1 && counts[5] == 2 && counts[4] == 1, "bin counts");
  const int64_t bad_labels[] = {0, 3, 0, 2};
  CHECK_STATUS(bdl_metrics_accuracy(p, 4, 3, bad_labels, &accuracy), BDL_INVALID_ARGUMENT, "label 3");
  const double unnormalised[] = {0.5, 0.2, 0.1};
  CHECK_STATUS(bdl_metrics_nll(unnormalised, 1, 3, labels, &nll), BDL_INVALID_ARGUMENT, "sum to");
  CHECK_STATUS(bdl_metrics_ece(p, 4, 3, labels, 0, &ece), BDL_INVALID_ARGUMENT, "bins");

  for (int s = 0; s < 3; ++s) bdl_laplace_free(posteriors[s]);
  bdl_laplace_free(loaded);
  bdl_laplace_free(last);
  bdl_model_free(other);
  bdl_model_free(model);
  CHECK(bdl_debug_live_handles() == 0, "%lld handles leaked", (long long)bdl_debug_live_handles());
  return check_summary("test_laplace");
}
