#define _POSIX_C_SOURCE 200809L  /* mkstemp, truncate */
/* Pruning through the C ABI: scores against the dense posterior precision built from the
 * curvature's own matrix, OPD = 2·OBD + δθ² for diag, unit sums, masks (sparsity reached, 0% is
 * bit-identical), applying them, sparsity and MAC counts, the architecture query, model files
 * with masks, and bad input. */
#include <bdlcore.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "dense.h"

static const bdl_layer_spec MLP[] = {
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 3, .out_features = 5},
    {.kind = BDL_LAYER_TANH},
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 5, .out_features = 4},
    {.kind = BDL_LAYER_RELU},
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 4, .out_features = 3},
};
static const int64_t INPUT[] = {3};
enum { P = 15 + 5 + 20 + 4 + 12 + 3, N = 10, C = 3, TENSORS = 6, UNITS = 5 + 4, WEIGHTS = 15 + 20 + 12 };
/* Where each parameter tensor starts, and its size. */
static const int TENSOR_START[TENSORS] = {0, 15, 20, 40, 44, 56};
static const int TENSOR_SIZE[TENSORS] = {15, 5, 20, 4, 12, 3};
static const double PRIOR[TENSORS] = {0.7, 1.3, 0.9, 2.0, 1.1, 0.5};
static const double TEMPERATURE = 1.5;

/* Two results of the same sums: rounding only. */
static const double ROUNDING = 1e-13;
/* Against the dense Cholesky of an O(10)-conditioned 59 × 59 matrix: O(n·ε·κ). */
static const double DENSE = 1e-9;

static double delta_of(int p) {
  for (int t = TENSORS - 1; t >= 0; --t)
    if (p >= TENSOR_START[t]) return PRIOR[t];
  return NAN;
}

static bdl_laplace *fit(bdl_model *model, const double *X, const double *y, int32_t structure) {
  bdl_laplace_params params;
  bdl_laplace_params_init(&params);
  params.structure = structure;
  params.prior_precision = PRIOR;
  params.prior_precision_count = TENSORS;
  params.temperature = TEMPERATURE;
  bdl_laplace *laplace = NULL;
  CHECK_STATUS(bdl_laplace_fit(model, X, N, y, &params, NULL, NULL, &laplace), BDL_OK, "");
  return laplace;
}

/* h·G + diag(δ) from the curvature of `kind`, its diagonal and the diagonal of its inverse. */
static void dense_precision(bdl_model *model, const double *X, const double *y, int32_t kind, double *diagonal, double *inverse) {
  bdl_curvature_params cp;
  bdl_curvature_params_init(&cp);
  cp.kind = kind;
  bdl_curvature *curvature = NULL;
  CHECK_STATUS(bdl_curvature_fit(model, X, N, y, &cp, &curvature), BDL_OK, "");
  static double M[P * P];
  CHECK_STATUS(bdl_curvature_dense(curvature, 1 / TEMPERATURE, 0, M, P * P), BDL_OK, "");
  for (int p = 0; p < P; ++p) M[p * P + p] += delta_of(p);
  for (int p = 0; p < P; ++p) diagonal[p] = M[p * P + p];
  CHECK(!isnan(cholesky_logdet(M, P)), "dense P is positive definite");
  inverse_diagonal(M, inverse, P);
  bdl_curvature_free(curvature);
}

static double scores_error(const double *got, const double *weights, const double *theta, int invert) {
  double expected[P];
  for (int p = 0; p < P; ++p) expected[p] = (invert ? 1 / weights[p] : weights[p]) * theta[p] * theta[p];
  return max_relative_error(got, expected, P);
}

int main(void) {
  bdl_model *model = NULL;
  CHECK_STATUS(bdl_model_create(MLP, 5, INPUT, 1, 9, &model), BDL_OK, "");
  double X[N * 3], y[N], theta[P];
  for (int i = 0; i < N * 3; ++i) X[i] = 1.4 * cos(1.3 * i + 0.2);
  for (int i = 0; i < N; ++i) y[i] = i % C;
  for (int p = 0; p < P; ++p) theta[p] = 0.8 * sin(0.7 * p + 0.1);
  CHECK_STATUS(bdl_model_set_parameters(model, theta, P), BDL_OK, "");

  /* OPD and K-FAC-OBS of each structure equal θ² times the diagonals of the dense P and P⁻¹. */
  const int32_t structures[] = {BDL_LAPLACE_FULL, BDL_LAPLACE_DIAG, BDL_LAPLACE_KRON};
  const int32_t kinds[] = {BDL_CURVATURE_GGN, BDL_CURVATURE_DIAG_GGN, BDL_CURVATURE_KFAC};
  bdl_laplace *posteriors[3];
  for (int s = 0; s < 3; ++s) {
    posteriors[s] = fit(model, X, y, structures[s]);
    double diagonal[P], inverse[P], opd[P], obs[P];
    dense_precision(model, X, y, kinds[s], diagonal, inverse);
    int64_t count = -1;
    CHECK_STATUS(bdl_pruning_scores(posteriors[s], model, BDL_PRUNING_OPD, 0, 0, NULL, 0, &count), BDL_OK, "");
    CHECK(count == P, "count query: %lld", (long long)count);
    CHECK_STATUS(bdl_pruning_scores(posteriors[s], NULL, BDL_PRUNING_OPD, 0, 0, opd, P, NULL), BDL_OK, "");
    CHECK_STATUS(bdl_pruning_scores(posteriors[s], model, BDL_PRUNING_KFAC_OBS, 0, 0, obs, P, NULL), BDL_OK, "");
    double e1 = scores_error(opd, diagonal, theta, 0), e2 = scores_error(obs, inverse, theta, 1);
    CHECK(e1 <= DENSE, "structure %d: OPD error %.3g", structures[s], e1);
    CHECK(e2 <= DENSE, "structure %d: K-FAC-OBS error %.3g", structures[s], e2);
  }

  /* OPD(diag) = 2·OBD + δθ² elementwise. */
  double opd[P], obd[P], expected[P];
  bdl_pruning_scores(posteriors[1], model, BDL_PRUNING_OPD, 0, 0, opd, P, NULL);
  CHECK_STATUS(bdl_pruning_scores(posteriors[1], model, BDL_PRUNING_OBD, 0, 0, obd, P, NULL), BDL_OK, "");
  for (int p = 0; p < P; ++p) expected[p] = 2 * obd[p] + delta_of(p) * theta[p] * theta[p];
  CHECK(max_relative_error(opd, expected, P) <= ROUNDING, "OPD = 2·OBD + δθ²: %.3g", max_relative_error(opd, expected, P));

  /* Magnitude and random need no posterior; random is seeded. */
  double magnitude[P], r1[P], r2[P], r3[P];
  CHECK_STATUS(bdl_pruning_scores(NULL, model, BDL_PRUNING_MAGNITUDE, 0, 0, magnitude, P, NULL), BDL_OK, "");
  int same = 1;
  for (int p = 0; p < P; ++p) same &= magnitude[p] == fabs(theta[p]);
  CHECK(same, "magnitude is |θ|");
  bdl_pruning_scores(NULL, model, BDL_PRUNING_RANDOM, 0, 4, r1, P, NULL);
  bdl_pruning_scores(NULL, model, BDL_PRUNING_RANDOM, 0, 4, r2, P, NULL);
  bdl_pruning_scores(NULL, model, BDL_PRUNING_RANDOM, 0, 5, r3, P, NULL);
  CHECK(memcmp(r1, r2, sizeof r1) == 0 && memcmp(r1, r3, sizeof r1) != 0, "random scores follow the seed");

  /* Structured scores: per unit of the two hidden layers, the sum of its row and bias. */
  double units[UNITS];
  int64_t unit_count = 0;
  CHECK_STATUS(bdl_pruning_scores(posteriors[2], model, BDL_PRUNING_OPD, 1, 0, NULL, 0, &unit_count), BDL_OK, "");
  CHECK(unit_count == UNITS, "%lld units", (long long)unit_count);
  CHECK_STATUS(bdl_pruning_scores(posteriors[2], model, BDL_PRUNING_OPD, 1, 0, units, UNITS, NULL), BDL_OK, "");
  double kron_opd[P], unit_sums[UNITS];
  bdl_pruning_scores(posteriors[2], model, BDL_PRUNING_OPD, 0, 0, kron_opd, P, NULL);
  for (int j = 0; j < 5; ++j) {
    unit_sums[j] = kron_opd[15 + j];
    for (int i = 0; i < 3; ++i) unit_sums[j] += kron_opd[j * 3 + i];
  }
  for (int j = 0; j < 4; ++j) {
    unit_sums[5 + j] = kron_opd[40 + j];
    for (int i = 0; i < 5; ++i) unit_sums[5 + j] += kron_opd[20 + j * 5 + i];
  }
  CHECK(max_relative_error(units, unit_sums, UNITS) <= ROUNDING, "unit sums: %.3g", max_relative_error(units, unit_sums, UNITS));

  /* Unstructured mask at 50%: round(0.5·47) = 24 weights with the smallest scores, biases kept. */
  double mask[P];
  CHECK_STATUS(bdl_pruning_mask(model, kron_opd, P, 0.5, 0, NULL, 0, 0, mask, P), BDL_OK, "");
  int pruned = 0, biases_pruned = 0;
  double largest_pruned = -INFINITY, smallest_kept = INFINITY;
  for (int t = 0; t < TENSORS; ++t)
    for (int p = TENSOR_START[t]; p < TENSOR_START[t] + TENSOR_SIZE[t]; ++p) {
      if (t % 2 == 1) { biases_pruned += mask[p] == 0; continue; }
      if (mask[p] == 0) { ++pruned; largest_pruned = fmax(largest_pruned, kron_opd[p]); }
      else smallest_kept = fmin(smallest_kept, kron_opd[p]);
    }
  CHECK(pruned == 24 && biases_pruned == 0, "%d weights and %d biases pruned", pruned, biases_pruned);
  CHECK(largest_pruned <= smallest_kept, "pruned %.3g > kept %.3g", largest_pruned, smallest_kept);

  /* 0% sparsity keeps every bit of θ. */
  double keep[P], before[P], after[P];
  CHECK_STATUS(bdl_pruning_mask(model, kron_opd, P, 0, 0, NULL, 0, 1, keep, P), BDL_OK, "");
  bdl_model_get_parameters(model, before, P);
  CHECK_STATUS(bdl_model_apply_mask(model, keep, P), BDL_OK, "");
  bdl_model_get_parameters(model, after, P);
  CHECK(memcmp(before, after, sizeof before) == 0, "0%% sparsity changed θ");

  /* Applying the mask zeroes exactly the pruned parameters; the report agrees with the mask. */
  bdl_model *masked = NULL;
  bdl_model_create(MLP, 5, INPUT, 1, 0, &masked);
  bdl_model_set_parameters(masked, theta, P);
  CHECK_STATUS(bdl_model_apply_mask(masked, mask, P), BDL_OK, "");
  bdl_model_get_parameters(masked, after, P);
  int exact = 1;
  for (int p = 0; p < P; ++p) exact &= mask[p] == 0 ? (after[p] == 0 && !signbit(after[p])) : after[p] == theta[p];
  CHECK(exact, "apply_mask zeroes exactly the masked entries");
  bdl_layer_sparsity from_mask[3], from_zeros[3];
  int64_t layer_count = 0;
  CHECK_STATUS(bdl_model_sparsity(masked, NULL, 0, NULL, 0, &layer_count), BDL_OK, "");
  CHECK(layer_count == 3, "%lld layers", (long long)layer_count);
  CHECK_STATUS(bdl_model_sparsity(model, mask, P, from_mask, 3, NULL), BDL_OK, "");
  CHECK_STATUS(bdl_model_sparsity(masked, NULL, 0, from_zeros, 3, NULL), BDL_OK, "");
  CHECK(memcmp(from_mask, from_zeros, sizeof from_mask) == 0, "the report of the mask equals that of the masked θ");
  int64_t kept = 0;
  for (int l = 0; l < 3; ++l) {
    kept += from_mask[l].weights_kept;
    CHECK(from_mask[l].macs == from_mask[l].weights && from_mask[l].macs_kept == from_mask[l].weights_kept, "dense layers: one MAC per weight");
    CHECK(from_mask[l].biases_kept == from_mask[l].biases, "biases kept");
  }
  CHECK(kept == WEIGHTS - 24 && from_mask[1].layer == 2 && from_mask[2].weights == 12, "report totals");

  /* Structured: 0.4 of 5 units and 0.5 of 4 units go, each with its bias; the output layer stays. */
  double structured[P];
  const double fractions[] = {0.4, 0.5};
  CHECK_STATUS(bdl_pruning_mask(model, units, UNITS, 0, 1, fractions, 2, 0, structured, P), BDL_OK, "");
  bdl_layer_sparsity report[3];
  CHECK_STATUS(bdl_model_sparsity(model, structured, P, report, 3, NULL), BDL_OK, "");
  CHECK(report[0].units_kept == 3 && report[1].units_kept == 2 && report[2].units_kept == 3, "units kept %lld %lld %lld",
        (long long)report[0].units_kept, (long long)report[1].units_kept, (long long)report[2].units_kept);
  CHECK(report[0].biases_kept == 3 && report[0].weights_kept == 9 && report[1].weights_kept == 10, "whole units removed");

  /* The architecture query rebuilds the same network. */
  bdl_layer_spec specs[5];
  int64_t n_layers = 0, rank = 0, shape[3];
  CHECK_STATUS(bdl_model_layers(model, NULL, 0, &n_layers, NULL, 0, &rank), BDL_OK, "");
  CHECK(n_layers == 5 && rank == 1, "%lld layers, rank %lld", (long long)n_layers, (long long)rank);
  CHECK_STATUS(bdl_model_layers(model, specs, 5, NULL, shape, 3, NULL), BDL_OK, "");
  CHECK(memcmp(specs, MLP, sizeof specs) == 0 && shape[0] == 3, "bdl_model_layers returns the specs it was built from");
  CHECK_STATUS(bdl_model_layers(model, specs, 4, NULL, NULL, 0, NULL), BDL_SHAPE_MISMATCH, "out_layers");

  /* Model files: θ and the mask round-trip bit for bit; damaged files are refused. */
  char path[] = "/tmp/bdlcore-model-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  CHECK_STATUS(bdl_model_save(masked, mask, P, path), BDL_OK, "");
  int64_t file_p = 0;
  int32_t has_mask = -1;
  CHECK_STATUS(bdl_model_file_info(path, &file_p, &has_mask), BDL_OK, "");
  CHECK(file_p == P && has_mask == 1, "file info: P = %lld, mask %d", (long long)file_p, has_mask);
  bdl_model *loaded = NULL, *none = NULL;
  double loaded_mask[P], small_mask[P];
  CHECK_STATUS(bdl_model_load(path, &none, small_mask, P - 1, NULL), BDL_SHAPE_MISMATCH, "out_mask");
  CHECK(none == NULL, "no handle on failure");
  CHECK_STATUS(bdl_model_load(path, &loaded, loaded_mask, P, &has_mask), BDL_OK, "");
  double loaded_theta[P];
  bdl_model_get_parameters(loaded, loaded_theta, P);
  CHECK(memcmp(loaded_theta, after, sizeof after) == 0 && memcmp(loaded_mask, mask, sizeof mask) == 0 && has_mask == 1, "bit-exact round trip");
  bdl_model_free(loaded);
  CHECK_STATUS(bdl_model_save(masked, NULL, 0, path), BDL_OK, "");
  CHECK_STATUS(bdl_model_load(path, &loaded, loaded_mask, P, &has_mask), BDL_OK, "");
  CHECK(has_mask == 0, "no mask saved");
  bdl_model_free(loaded);
  CHECK(truncate(path, 60) == 0, "truncate");
  CHECK_STATUS(bdl_model_load(path, &none, NULL, 0, NULL), BDL_CORRUPT_DATA, "");
  CHECK_STATUS(bdl_model_file_info(path, &file_p, NULL), BDL_CORRUPT_DATA, "");
  CHECK_STATUS(bdl_model_load("/nonexistent/model.bdl", &none, NULL, 0, NULL), BDL_IO_ERROR, "cannot open");
  CHECK(none == NULL, "no handle on failure");
  unlink(path);

  /* Bad input: clear statuses, never a trap. */
  double wrong[P];
  for (int p = 0; p < P; ++p) wrong[p] = 0.5;
  CHECK_STATUS(bdl_pruning_mask(model, kron_opd, P, 1.0, 0, NULL, 0, 0, mask, P), BDL_INVALID_ARGUMENT, "sparsity");
  CHECK_STATUS(bdl_pruning_mask(model, kron_opd, P, -0.1, 0, NULL, 0, 0, mask, P), BDL_INVALID_ARGUMENT, "sparsity");
  CHECK_STATUS(bdl_pruning_mask(model, kron_opd, P - 1, 0.5, 0, NULL, 0, 0, mask, P), BDL_SHAPE_MISMATCH, "scores");
  CHECK_STATUS(bdl_pruning_mask(model, kron_opd, P, 0.5, 0, NULL, 0, 0, mask, P - 1), BDL_SHAPE_MISMATCH, "out_mask");
  const double all[] = {0.9, 0.2};  /* 0.9·5 rounds to 5: every unit of layer 0 */
  CHECK_STATUS(bdl_pruning_mask(model, units, UNITS, 0, 1, all, 2, 0, mask, P), BDL_INVALID_ARGUMENT, "all 5 units");
  CHECK_STATUS(bdl_pruning_mask(model, units, UNITS, 0, 1, fractions, 1, 0, mask, P), BDL_OK, "");
  CHECK_STATUS(bdl_pruning_mask(model, units, UNITS, 0, 1, all, 3, 0, mask, P), BDL_SHAPE_MISMATCH, "per-layer");
  CHECK_STATUS(bdl_pruning_mask(model, units, UNITS, 0.5, 2, NULL, 0, 0, mask, P), BDL_INVALID_ARGUMENT, "structured");
  CHECK_STATUS(bdl_model_apply_mask(model, wrong, P), BDL_INVALID_ARGUMENT, "0 (pruned) or 1 (kept)");
  CHECK_STATUS(bdl_model_apply_mask(model, keep, P - 1), BDL_SHAPE_MISMATCH, "parameters");
  CHECK_STATUS(bdl_model_apply_mask(model, NULL, P), BDL_INVALID_ARGUMENT, "NULL");
  CHECK_STATUS(bdl_model_sparsity(model, keep, 3, report, 3, NULL), BDL_SHAPE_MISMATCH, "parameters");
  CHECK_STATUS(bdl_model_save(model, keep, 2, "/tmp/unused.bdl"), BDL_SHAPE_MISMATCH, "parameters");
  CHECK_STATUS(bdl_model_save(model, NULL, 0, "/nonexistent/dir/model.bdl"), BDL_IO_ERROR, "");
  CHECK_STATUS(bdl_pruning_scores(NULL, model, BDL_PRUNING_OPD, 0, 0, opd, P, NULL), BDL_INVALID_ARGUMENT, "Laplace posterior");
  CHECK_STATUS(bdl_pruning_scores(NULL, NULL, BDL_PRUNING_MAGNITUDE, 0, 0, opd, P, NULL), BDL_INVALID_ARGUMENT, "");
  CHECK_STATUS(bdl_pruning_scores(posteriors[0], model, 0, 0, 0, opd, P, NULL), BDL_INVALID_ARGUMENT, "BDL_PRUNING_");
  CHECK_STATUS(bdl_pruning_scores(posteriors[0], NULL, BDL_PRUNING_OPD, 1, 0, opd, P, NULL), BDL_INVALID_ARGUMENT, "model");
  CHECK_STATUS(bdl_pruning_scores(posteriors[0], model, BDL_PRUNING_OPD, 0, 0, opd, P - 1, NULL), BDL_SHAPE_MISMATCH, "capacity");
  bdl_model *other = NULL;
  const bdl_layer_spec single[] = {{.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 3, .out_features = 3}};
  bdl_model_create(single, 1, INPUT, 1, 0, &other);
  CHECK_STATUS(bdl_pruning_scores(posteriors[0], other, BDL_PRUNING_OPD, 0, 0, opd, P, NULL), BDL_SHAPE_MISMATCH, "parameters");
  CHECK_STATUS(bdl_pruning_scores(NULL, other, BDL_PRUNING_MAGNITUDE, 1, 0, opd, P, NULL), BDL_INVALID_ARGUMENT, "output layer");

  /* The sparsity curve: at 0% the unpruned network's accuracy; at s the network pruned by hand;
   * θ is untouched; fine-tuning changes the pruned network; bad sparsities are refused. */
  {
    double magnitude[P], before[P], after[P], f[N * C];
    bdl_model_get_parameters(model, before, P);
    bdl_pruning_scores(NULL, model, BDL_PRUNING_MAGNITUDE, 0, 0, magnitude, P, NULL);
    const double levels[2] = {0.0, 0.6};
    double accuracy[2], nll[2], ece[2];
    CHECK_STATUS(bdl_pruning_sparsity_curve(model, magnitude, P, levels, 2, X, N, y, NULL, NULL, 0, NULL, accuracy, nll, ece), BDL_OK, "");
    bdl_model_get_parameters(model, after, P);
    CHECK(memcmp(before, after, sizeof before) == 0, "the curve changed θ");
    for (int k = 0; k < 2; ++k) {
      bdl_model *copy = NULL;
      bdl_model_create(MLP, 5, INPUT, 1, 9, &copy);
      bdl_model_set_parameters(copy, before, P);
      double m[P];
      bdl_pruning_mask(copy, magnitude, P, levels[k], 0, NULL, 0, 0, m, P);
      bdl_model_apply_mask(copy, m, P);
      bdl_model_forward(copy, X, N, f, N * C);
      int correct = 0;
      for (int n = 0; n < N; ++n) {
        int best = 0;
        for (int c = 1; c < C; ++c) if (f[n * C + c] > f[n * C + best]) best = c;
        correct += best == (int)y[n];
      }
      CHECK(fabs(accuracy[k] - (double)correct / N) < 1e-15, "sparsity %g: accuracy %g vs %g", levels[k], accuracy[k], (double)correct / N);
      CHECK(nll[k] > 0 && ece[k] >= 0 && ece[k] <= 1, "sparsity %g: nll %g, ece %g", levels[k], nll[k], ece[k]);
      bdl_model_free(copy);
    }
    bdl_train_params tune;
    bdl_train_params_init(&tune);
    tune.epochs = 5;
    tune.learning_rate = 0.05;
    tune.batch_size = 5;
    double tuned[2];
    CHECK_STATUS(bdl_pruning_sparsity_curve(model, magnitude, P, levels, 2, X, N, y, &tune, X, N, y, NULL, tuned, NULL), BDL_OK, "");
    CHECK(tuned[1] != nll[1], "fine-tuning left the NLL at %g", nll[1]);
    const double bad[1] = {1.0};
    CHECK_STATUS(bdl_pruning_sparsity_curve(model, magnitude, P, bad, 1, X, N, y, NULL, NULL, 0, NULL, accuracy, nll, ece), BDL_INVALID_ARGUMENT, "sparsity");
    CHECK_STATUS(bdl_pruning_sparsity_curve(model, magnitude, P - 1, levels, 2, X, N, y, NULL, NULL, 0, NULL, accuracy, nll, ece), BDL_SHAPE_MISMATCH, "scores");
    tune.likelihood = BDL_LIKELIHOOD_REGRESSION;
    CHECK_STATUS(bdl_pruning_sparsity_curve(model, magnitude, P, levels, 2, X, N, y, &tune, X, N, y, accuracy, nll, ece), BDL_INVALID_ARGUMENT, "CLASSIFICATION");
  }

  for (int s = 0; s < 3; ++s) bdl_laplace_free(posteriors[s]);
  bdl_model_free(model);
  bdl_model_free(masked);
  bdl_model_free(other);
  CHECK(bdl_debug_live_handles() == 0, "%lld handles leaked", (long long)bdl_debug_live_handles());
  return check_summary("test_pruning");
}
