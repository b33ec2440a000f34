#define _POSIX_C_SOURCE 200809L  /* mkstemp, truncate */
/* Curvature through the C ABI: K-FAC/EK-FAC/GGN operators against their dense form, the
 * accumulator's add/merge/save/load/finalize, and bad input. */
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
enum { P = 3 * 4 + 4 + 4 * 3 + 3, N = 6 };

static bdl_curvature *fit(bdl_model *model, const double *X, const double *y, int32_t kind) {
  bdl_curvature_params params;
  bdl_curvature_params_init(&params);
  params.kind = kind;
  params.batch_size = 4;
  bdl_curvature *curvature = NULL;
  bdl_status status = bdl_curvature_fit(model, X, N, y, &params, &curvature);
  CHECK(status == BDL_OK, "fit kind %d: %s", kind, bdl_last_error_message());
  return curvature;
}

/* log det, solve and diagonal of scale·G + damping·I against a dense Cholesky of its matrix. */
static void check_against_dense(bdl_curvature *curvature, const char *name) {
  const double scale = 0.8, damping = 0.3;
  static double M[P * P], L[P * P];
  CHECK_STATUS(bdl_curvature_dense(curvature, scale, damping, M, P * P), BDL_OK, "");
  memcpy(L, M, sizeof M);
  double reference = cholesky_logdet(L, P), logdet = 0;
  CHECK_STATUS(bdl_curvature_logdet(curvature, scale, damping, &logdet), BDL_OK, "");
  CHECK(fabs(logdet - reference) < 1e-9 * fmax(1, fabs(reference)), "%s: logdet %.15g vs %.15g", name, logdet, reference);
  double v[2 * P], x[2 * P], r[P];
  for (int i = 0; i < 2 * P; ++i) v[i] = sin(0.3 * i + 1);
  CHECK_STATUS(bdl_curvature_apply_power(curvature, scale, damping, -1, v, 2, x, 2 * P), BDL_OK, "");
  for (int t = 0; t < 2; ++t) {
    matvec(M, x + t * P, r, P);
    CHECK(max_relative_error(r, v + t * P, P) < 1e-9, "%s: M·(M⁻¹v) = v for vector %d", name, t);
  }
  double diagonal[P], expected[P];
  CHECK_STATUS(bdl_curvature_diagonal(curvature, scale, damping, -1, diagonal, P), BDL_OK, "");
  inverse_diagonal(L, expected, P);
  CHECK(max_relative_error(diagonal, expected, P) < 1e-9, "%s: diag of the inverse", name);
}

int main(void) {
  bdl_model *model = NULL;
  CHECK_STATUS(bdl_model_create(MLP, 3, INPUT, 1, 3, &model), BDL_OK, "");
  double X[N * 3], y[N];
  for (int i = 0; i < N * 3; ++i) X[i] = cos(1.7 * i);
  for (int i = 0; i < N; ++i) y[i] = i % 3;

  const int32_t kinds[] = {BDL_CURVATURE_KFAC, BDL_CURVATURE_EKFAC, BDL_CURVATURE_DIAG_GGN, BDL_CURVATURE_GGN};
  const char *names[] = {"K-FAC", "EK-FAC", "diagonal GGN", "GGN"};
  bdl_curvature *curvatures[4];
  for (int i = 0; i < 4; ++i) {
    curvatures[i] = fit(model, X, y, kinds[i]);
    int32_t kind = 0;
    int64_t p = 0, layers = -1;
    CHECK_STATUS(bdl_curvature_info(curvatures[i], &kind, &p, &layers), BDL_OK, "");
    CHECK(kind == kinds[i] && p == P && layers == (i < 2 ? 2 : 0), "%s: info", names[i]);
    check_against_dense(curvatures[i], names[i]);
  }
  /* The exact diagonal is the dense GGN's diagonal. */
  double d1[P], d2[P];
  bdl_curvature_diagonal(curvatures[2], 1, 0, 1, d1, P);
  bdl_curvature_diagonal(curvatures[3], 1, 0, 1, d2, P);
  CHECK(max_relative_error(d1, d2, P) < 1e-12, "diagonal GGN = diag(GGN)");
  CHECK_STATUS(bdl_curvature_kfac_factors(curvatures[3], 0, NULL, NULL, NULL, NULL, 0, NULL, 0), BDL_WRONG_STATE, "no Kronecker factors");

  /* An engine fit times its accumulation: Σ d²·rows over its Grams, with C − 1 = 2 vectors per
   * example backpropagated for the exact Fisher. */
  double flops = 0, seconds = 0;
  int64_t workers = 0;
  CHECK_STATUS(bdl_curvature_kfac_accumulation(curvatures[0], &flops, &seconds, &workers), BDL_OK, "");
  CHECK(flops == N * (9 + 16 * 2) + N * (16 + 9 * 2) && seconds > 0 && workers == 1,
        "K-FAC accumulation: %g flops, %g s, %lld workers", flops, seconds, (long long)workers);
  CHECK_STATUS(bdl_curvature_kfac_accumulation(curvatures[1], NULL, NULL, NULL), BDL_OK, "");
  CHECK_STATUS(bdl_curvature_kfac_accumulation(curvatures[2], &flops, NULL, NULL), BDL_WRONG_STATE, "not accumulated by an engine fit");
  CHECK_STATUS(bdl_curvature_kfac_accumulation(NULL, &flops, NULL, NULL), BDL_INVALID_ARGUMENT, "curvature");

  /* The accumulator fed with the model's own statistics reproduces K-FAC's factors; halves merge. */
  const int64_t d_in[] = {3, 4}, d_out[] = {4, 3};
  const int32_t has_bias[] = {1, 1};
  bdl_kfac_accumulator *first = NULL, *second = NULL, *loaded = NULL;
  CHECK_STATUS(bdl_kfac_accumulator_create(d_in, d_out, has_bias, 2, BDL_KFAC_EXPAND, &first), BDL_OK, "");
  CHECK_STATUS(bdl_kfac_accumulator_create(d_in, d_out, has_bias, 2, BDL_KFAC_EXPAND, &second), BDL_OK, "");
  for (int half = 0; half < 2; ++half) {
    /* The output-Hessian square root's columns: V (3, 3, 3) per half of 3 examples. */
    double outputs[3 * 3], V[3 * 3 * 3];
    bdl_model_forward(model, X + half * 9, 3, outputs, 9);
    for (int n = 0; n < 3; ++n) {
      double p[3], total = 0, largest = fmax(outputs[n * 3], fmax(outputs[n * 3 + 1], outputs[n * 3 + 2]));
      for (int c = 0; c < 3; ++c) total += (p[c] = exp(outputs[n * 3 + c] - largest));
      for (int c = 0; c < 3; ++c) p[c] /= total;
      for (int k = 0; k < 3; ++k)
        for (int c = 0; c < 3; ++c) V[(n * 3 + k) * 3 + c] = sqrt(p[k]) * ((c == k) - p[c]);
    }
    bdl_layer_statistics *stats = NULL;
    CHECK_STATUS(bdl_model_backward_vectors(model, X + half * 9, 3, V, 3, &stats), BDL_OK, "");
    for (int layer = 0; layer < 2; ++layer) {
      double a[3 * 4], g[3 * 3 * 4];
      bdl_layer_statistics_get(stats, layer, a, 12, g, 36);
      CHECK_STATUS(bdl_kfac_accumulator_add(half == 0 ? first : second, layer, a, 3, 1, g, 3), BDL_OK, "");
    }
    bdl_layer_statistics_free(stats);
  }
  CHECK_STATUS(bdl_kfac_accumulator_merge(first, second), BDL_OK, "");
  char path[512];
  snprintf(path, sizeof path, "%s/bdlcore-kfac-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  int fd = mkstemp(path);
  close(fd);
  CHECK_STATUS(bdl_kfac_accumulator_save(first, path), BDL_OK, "");
  CHECK_STATUS(bdl_kfac_accumulator_load(path, &loaded), BDL_OK, "");
  bdl_curvature *finalized = NULL;
  CHECK_STATUS(bdl_kfac_accumulator_finalize(loaded, &finalized), BDL_OK, "");
  CHECK_STATUS(bdl_curvature_kfac_accumulation(finalized, &flops, NULL, NULL), BDL_WRONG_STATE, "not accumulated by an engine fit");
  for (int layer = 0; layer < 2; ++layer) {
    double B1[16], A1[16], B2[16], A2[16];
    int64_t index = -1, dout = 0, din = 0;
    CHECK_STATUS(bdl_curvature_kfac_factors(curvatures[0], layer, &index, &dout, &din, B1, 16, A1, 16), BDL_OK, "");
    CHECK(index == 2 * layer && dout == d_out[layer] && din == d_in[layer], "layer %d position %lld", layer, (long long)index);
    CHECK_STATUS(bdl_curvature_kfac_factors(finalized, layer, NULL, NULL, NULL, B2, 16, A2, 16), BDL_OK, "");
    CHECK(max_relative_error(B2, B1, (size_t)(dout * dout)) < 1e-12, "B of layer %d from merged, saved, loaded statistics", layer);
    CHECK(max_relative_error(A2, A1, (size_t)(din * din)) < 1e-12, "A of layer %d", layer);
  }

  /* float32 statistics accumulate exactly like the same values in float64. */
  bdl_kfac_accumulator *f64 = NULL, *f32 = NULL;
  bdl_kfac_accumulator_create(d_in, d_out, has_bias, 2, BDL_KFAC_REDUCE, &f64);
  bdl_kfac_accumulator_create(d_in, d_out, has_bias, 2, BDL_KFAC_REDUCE, &f32);
  {
    double ad[2 * 2 * 3], gd[2 * 1 * 2 * 4];
    float af[2 * 2 * 3], gf[2 * 1 * 2 * 4];
    for (int i = 0; i < 12; ++i) af[i] = (float)(ad[i] = 0.25 * (i % 7) - 0.5);
    for (int i = 0; i < 16; ++i) gf[i] = (float)(gd[i] = 0.125 * (i % 5) - 0.25);
    CHECK_STATUS(bdl_kfac_accumulator_add(f64, 0, ad, 2, 2, gd, 1), BDL_OK, "");
    CHECK_STATUS(bdl_kfac_accumulator_add_f32(f32, 0, af, 2, 2, gf, 1), BDL_OK, "");
    CHECK_STATUS(bdl_kfac_accumulator_add_f32(f32, 0, af, 2, 2, NULL, 1), BDL_INVALID_ARGUMENT, "g is NULL");
    CHECK_STATUS(bdl_kfac_accumulator_add(f64, 0, ad, 1, 2, gd, 2), BDL_SHAPE_MISMATCH, "K = 2");
    bdl_curvature *c64 = NULL, *c32 = NULL;
    bdl_kfac_accumulator_finalize(f64, &c64);
    bdl_kfac_accumulator_finalize(f32, &c32);
    double B64[16], B32[16], A64[9], A32[9];
    bdl_curvature_kfac_factors(c64, 0, NULL, NULL, NULL, B64, 16, A64, 9);
    bdl_curvature_kfac_factors(c32, 0, NULL, NULL, NULL, B32, 16, A32, 9);
    CHECK(memcmp(B64, B32, sizeof B64) == 0 && memcmp(A64, A32, sizeof A64) == 0, "float32 = float64 statistics");
    /* Factored damping: log det equals Σ log((√h β + √δ/π)(√h α + π√δ)) from the dense factors. */
    CHECK_STATUS(bdl_curvature_set_kfac_damping(c64, BDL_KFAC_DAMPING_PI), BDL_OK, "");
    CHECK_STATUS(bdl_curvature_set_kfac_damping(c64, 9), BDL_INVALID_ARGUMENT, "mode = 9");
    CHECK_STATUS(bdl_curvature_set_kfac_damping(curvatures[3], BDL_KFAC_DAMPING_PI), BDL_WRONG_STATE, "no Kronecker factors");
    CHECK_STATUS(bdl_curvature_set_kfac_damping(curvatures[1], BDL_KFAC_DAMPING_PI), BDL_UNSUPPORTED, "EK-FAC");
    double exact = 0, factored = 0;
    bdl_curvature_logdet(c32, 1, 0.5, &exact);
    CHECK_STATUS(bdl_curvature_logdet(c64, 1, 0.5, &factored), BDL_OK, "");
    CHECK(factored > exact, "factored damping adds the positive cross term: %g vs %g", factored, exact);
    CHECK_STATUS(bdl_curvature_logdet(c64, 1, -0.5, &factored), BDL_INVALID_ARGUMENT, "delta ≥ 0");
    CHECK_STATUS(bdl_curvature_set_kfac_damping(c64, BDL_KFAC_DAMPING_EXACT), BDL_OK, "");
    CHECK_STATUS(bdl_curvature_logdet(c64, 1, 0.5, &factored), BDL_OK, "");
    CHECK(factored == exact, "exact damping again: %g vs %g", factored, exact);
    bdl_curvature_free(c64);
    bdl_curvature_free(c32);
  }
  bdl_kfac_accumulator_free(f64);
  bdl_kfac_accumulator_free(f32);

  /* Damaged, truncated and missing files. */
  FILE *file = fopen(path, "r+b");
  fseek(file, 40, SEEK_SET);
  fputc(0x5A, file);
  fclose(file);
  bdl_kfac_accumulator *bad = NULL;
  CHECK_STATUS(bdl_kfac_accumulator_load(path, &bad), BDL_CORRUPT_DATA, "checksum");
  CHECK(truncate(path, 30) == 0, "truncate");
  CHECK_STATUS(bdl_kfac_accumulator_load(path, &bad), BDL_CORRUPT_DATA, "");
  unlink(path);
  CHECK_STATUS(bdl_kfac_accumulator_load(path, &bad), BDL_IO_ERROR, "cannot open");
  CHECK_STATUS(bdl_kfac_accumulator_save(first, "no-such-directory/kfac.bin"), BDL_IO_ERROR, "no-such-directory");
  CHECK(bad == NULL, "no handle on failure");

  /* Bad input leaves the accumulator unchanged. */
  double a[3] = {1, 2, NAN}, g[12] = {1, 2, 3, 4}, B_before[16], B_after[16];
  bdl_curvature *before = NULL, *after = NULL;
  bdl_kfac_accumulator_finalize(first, &before);
  CHECK_STATUS(bdl_kfac_accumulator_add(first, 0, a, 1, 1, g, 3), BDL_NON_FINITE_INPUT, "a: entry 2");
  CHECK_STATUS(bdl_kfac_accumulator_add(first, 0, a, 1, 1, g, 1), BDL_SHAPE_MISMATCH, "earlier batches had 3");
  CHECK_STATUS(bdl_kfac_accumulator_add(first, 5, a, 1, 1, g, 1), BDL_INVALID_ARGUMENT, "layer = 5");
  CHECK_STATUS(bdl_kfac_accumulator_add(first, 0, a, 0, 1, g, 1), BDL_INVALID_ARGUMENT, "n = 0");
  CHECK_STATUS(bdl_kfac_accumulator_add(first, 0, NULL, 1, 1, g, 1), BDL_INVALID_ARGUMENT, "a is NULL");
  bdl_kfac_accumulator *reduce = NULL;
  bdl_kfac_accumulator_create(d_in, d_out, has_bias, 2, BDL_KFAC_REDUCE, &reduce);
  CHECK_STATUS(bdl_kfac_accumulator_merge(first, reduce), BDL_SHAPE_MISMATCH, "merge");
  bdl_kfac_accumulator_finalize(first, &after);
  bdl_curvature_kfac_factors(before, 0, NULL, NULL, NULL, B_before, 16, NULL, 0);
  bdl_curvature_kfac_factors(after, 0, NULL, NULL, NULL, B_after, 16, NULL, 0);
  CHECK(memcmp(B_before, B_after, sizeof B_before) == 0, "failed calls left the statistics unchanged");
  CHECK_STATUS(bdl_kfac_accumulator_create(d_in, d_out, has_bias, 2, 9, &bad), BDL_INVALID_ARGUMENT, "approximation = 9");
  bdl_curvature_params params;
  bdl_curvature_params_init(&params);
  params.kind = 42;
  bdl_curvature *none = NULL;
  CHECK_STATUS(bdl_curvature_fit(model, X, N, y, &params, &none), BDL_INVALID_ARGUMENT, "kind = 42");
  bdl_curvature_params_init(&params);
  params.fisher = BDL_FISHER_MC;
  params.mc_samples = 0;
  CHECK_STATUS(bdl_curvature_fit(model, X, N, y, &params, &none), BDL_INVALID_ARGUMENT, "mc_samples = 0");
  CHECK_STATUS(bdl_curvature_logdet(curvatures[3], 1, 0, &(double){0}), BDL_NOT_POSITIVE_DEFINITE, "damping > 0");

  for (int i = 0; i < 4; ++i) bdl_curvature_free(curvatures[i]);
  bdl_curvature_free(finalized);
  bdl_curvature_free(before);
  bdl_curvature_free(after);
  bdl_kfac_accumulator_free(first);
  bdl_kfac_accumulator_free(second);
  bdl_kfac_accumulator_free(loaded);
  bdl_kfac_accumulator_free(reduce);
  bdl_model_free(model);
  CHECK(bdl_debug_live_handles() == 0, "%lld handles leaked", (long long)bdl_debug_live_handles());
  return check_summary("test_curvature");
}
