/* Influence through the C ABI: identity scores are gradient dot products, self-influence is the
 * diagonal of the training-set scores, curvature scores against the dense K-FAC solve, top-k,
 * the evaluations, and bad input. */
#include <bdlcore.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "dense.h"

static const bdl_layer_spec MLP[] = {
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 3, .out_features = 4},
    {.kind = BDL_LAYER_TANH},
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 4, .out_features = 3},
};
static const int64_t INPUT[] = {3};
enum { P = 3 * 4 + 4 + 4 * 3 + 3, N = 10, Q = 3, C = 3 };

/* Per-example loss gradients (n × P): backward of p − e_y. */
static void loss_gradients(const bdl_model *model, const double *X, const double *y, int n, double *out) {
  double f[N * C], V[N * C];
  bdl_model_forward(model, X, n, f, n * C);
  for (int i = 0; i < n; ++i) {
    double largest = f[i * C], total = 0;
    for (int c = 1; c < C; ++c) largest = fmax(largest, f[i * C + c]);
    for (int c = 0; c < C; ++c) total += exp(f[i * C + c] - largest);
    for (int c = 0; c < C; ++c) V[i * C + c] = exp(f[i * C + c] - largest) / total - (c == (int)y[i]);
  }
  bdl_model_per_example_gradients(model, X, n, V, 1, out, (int64_t)n * P);
}

static bdl_influence *fit(bdl_model *model, const double *X, const double *y, int32_t curvature, int relative, double damping) {
  bdl_influence_params params;
  bdl_influence_params_init(&params);
  params.curvature = curvature;
  params.relative_damping = relative;
  params.damping = damping;
  params.batch_size = 4;
  bdl_influence *influence = NULL;
  CHECK_STATUS(bdl_influence_fit(model, X, N, y, &params, NULL, NULL, &influence), BDL_OK, "");
  return influence;
}

int main(void) {
  bdl_model *model = NULL;
  CHECK_STATUS(bdl_model_create(MLP, 3, INPUT, 1, 7, &model), BDL_OK, "");
  double X[N * 3], y[N], Xq[Q * 3], yq[Q];
  for (int i = 0; i < N * 3; ++i) X[i] = 1.2 * sin(0.9 * i + 0.4);
  for (int i = 0; i < N; ++i) y[i] = i % C;
  for (int i = 0; i < Q * 3; ++i) Xq[i] = cos(1.3 * i);
  for (int i = 0; i < Q; ++i) yq[i] = (i + 1) % C;
  static double G_train[N * P], G_query[Q * P], scores[Q * N];
  loss_gradients(model, X, y, N, G_train);
  loss_gradients(model, Xq, yq, Q, G_query);

  /* Identity: gradient dot products. */
  bdl_influence *identity = fit(model, X, y, BDL_INFLUENCE_IDENTITY, 0, 0);
  CHECK_STATUS(bdl_influence_scores(identity, model, Xq, Q, yq, BDL_MEASURE_LOSS, NULL, NULL, NULL, scores, Q * N), BDL_OK, "");
  double worst = 0;
  for (int q = 0; q < Q; ++q)
    for (int j = 0; j < N; ++j) {
      double dot = 0;
      for (int p = 0; p < P; ++p) dot += G_query[q * P + p] * G_train[j * P + p];
      worst = fmax(worst, fabs(scores[q * N + j] - dot) / fmax(1, fabs(dot)));
    }
  CHECK(worst < 1e-12, "identity scores vs gradient dot products: %g", worst);

  /* K-FAC with absolute damping λ: the dense solve (G_KFAC + λI)⁻¹ ∇ℓ. */
  const double lambda = 0.4;
  bdl_influence *kfac = fit(model, X, y, BDL_INFLUENCE_KFAC, 0, lambda);
  bdl_curvature_params cp;
  bdl_curvature_params_init(&cp);
  bdl_curvature *curvature = NULL;
  bdl_curvature_fit(model, X, N, y, &cp, &curvature);
  static double solved[N * P];
  CHECK_STATUS(bdl_curvature_apply_power(curvature, 1, lambda, -1, G_train, N, solved, N * P), BDL_OK, "");
  CHECK_STATUS(bdl_influence_scores(kfac, model, Xq, Q, yq, BDL_MEASURE_LOSS, NULL, NULL, NULL, scores, Q * N), BDL_OK, "");
  worst = 0;
  for (int q = 0; q < Q; ++q)
    for (int j = 0; j < N; ++j) {
      double dot = 0;
      for (int p = 0; p < P; ++p) dot += G_query[q * P + p] * solved[j * P + p];
      worst = fmax(worst, fabs(scores[q * N + j] - dot) / fmax(1, fabs(dot)));
    }
  CHECK(worst < 1e-10, "K-FAC scores vs the dense solve: %g", worst);

  /* The same scores from captured statistics (as a PyTorch user would pass them) and the curvature. */
  {
    double f[N * C], V[N * C];
    static double aq[2][Q * 4], gq[2][Q * 4], at[2][N * 4], gt[2][N * 4];
    bdl_layer_data query_data[2], train_data[2];
    const double *inputs[2] = {Xq, X};
    const double *labels[2] = {yq, y};
    const int counts[2] = {Q, N};
    for (int set = 0; set < 2; ++set) {
      int n = counts[set];
      bdl_model_forward(model, inputs[set], n, f, n * C);
      for (int i = 0; i < n; ++i) {
        double largest = f[i * C], total = 0;
        for (int c = 1; c < C; ++c) largest = fmax(largest, f[i * C + c]);
        for (int c = 0; c < C; ++c) total += exp(f[i * C + c] - largest);
        for (int c = 0; c < C; ++c) V[i * C + c] = exp(f[i * C + c] - largest) / total - (c == (int)labels[set][i]);
      }
      bdl_layer_statistics *statistics = NULL;
      CHECK_STATUS(bdl_model_backward_vectors(model, inputs[set], n, V, 1, &statistics), BDL_OK, "");
      for (int layer = 0; layer < 2; ++layer) {
        double *a = set == 0 ? aq[layer] : at[layer], *g = set == 0 ? gq[layer] : gt[layer];
        CHECK_STATUS(bdl_layer_statistics_get(statistics, layer, a, N * 4, g, N * 4), BDL_OK, "");
        bdl_layer_data entry = {.a = a, .g = g, .positions = 1};
        if (set == 0) query_data[layer] = entry; else train_data[layer] = entry;
      }
      bdl_layer_statistics_free(statistics);
    }
    static double captured[Q * N];
    CHECK_STATUS(bdl_influence_scores_from_statistics(curvature, lambda, 0, 2, query_data, Q, train_data, N, captured, Q * N), BDL_OK, "");
    CHECK(max_relative_error(captured, scores, Q * N) < 1e-12, "captured statistics reproduce the engine's K-FAC scores");
    CHECK_STATUS(bdl_influence_scores_from_statistics(curvature, -1, 0, 2, query_data, Q, train_data, N, captured, Q * N), BDL_INVALID_ARGUMENT, "damping");
    CHECK_STATUS(bdl_influence_scores_from_statistics(curvature, lambda, 0, 2, NULL, Q, train_data, N, captured, Q * N), BDL_INVALID_ARGUMENT, "queries is NULL");
    CHECK_STATUS(bdl_influence_scores_from_statistics(curvature, lambda, 0, 2, query_data, Q, train_data, N, captured, N), BDL_SHAPE_MISMATCH, "capacity");
    CHECK_STATUS(bdl_influence_scores_from_statistics(curvature, lambda, 0, 1, query_data, Q, train_data, N, captured, Q * N), BDL_SHAPE_MISMATCH, "n_layers = 1");
  }

  /* Self-influence = diag of the training-set scores (EK-FAC, relative damping). */
  bdl_influence *ekfac = fit(model, X, y, BDL_INFLUENCE_EKFAC, 1, 0.1);
  static double train_scores[N * N], self[N];
  CHECK_STATUS(bdl_influence_scores(ekfac, model, X, N, y, BDL_MEASURE_LOSS, NULL, NULL, NULL, train_scores, N * N), BDL_OK, "");
  CHECK_STATUS(bdl_influence_self(ekfac, model, NULL, NULL, self, N), BDL_OK, "");
  worst = 0;
  for (int j = 0; j < N; ++j) worst = fmax(worst, fabs(self[j] - train_scores[j * N + j]) / fmax(1, fabs(self[j])));
  CHECK(worst < 1e-10, "self-influence vs diagonal: %g", worst);
  int32_t kind = 0;
  int64_t n_train = 0, p = 0;
  CHECK_STATUS(bdl_influence_info(ekfac, &kind, &n_train, &p), BDL_OK, "");
  CHECK(kind == BDL_INFLUENCE_EKFAC && n_train == N && p == P, "info");

  /* Margin equals its cotangent e_y − e_{c*}; log-prob is minus the loss. */
  double margin[Q * N], via[Q * N], logp[Q * N], f[Q * C], cot[Q * C];
  bdl_model_forward(model, Xq, Q, f, Q * C);
  for (int q = 0; q < Q; ++q) {
    int label = (int)yq[q], best = label == 0 ? 1 : 0;
    for (int c = 0; c < C; ++c) if (c != label && f[q * C + c] > f[q * C + best]) best = c;
    for (int c = 0; c < C; ++c) cot[q * C + c] = (c == label) - (c == best);
  }
  CHECK_STATUS(bdl_influence_scores(ekfac, model, Xq, Q, yq, BDL_MEASURE_MARGIN, NULL, NULL, NULL, margin, Q * N), BDL_OK, "");
  CHECK_STATUS(bdl_influence_scores(ekfac, model, Xq, Q, NULL, BDL_MEASURE_COTANGENT, cot, NULL, NULL, via, Q * N), BDL_OK, "");
  CHECK(max_relative_error(margin, via, Q * N) < 1e-13, "margin = its cotangent");
  CHECK_STATUS(bdl_influence_scores(ekfac, model, Xq, Q, yq, BDL_MEASURE_LOG_PROB, NULL, NULL, NULL, logp, Q * N), BDL_OK, "");
  CHECK_STATUS(bdl_influence_scores(ekfac, model, Xq, Q, yq, BDL_MEASURE_LOSS, NULL, NULL, NULL, scores, Q * N), BDL_OK, "");
  for (int i = 0; i < Q * N; ++i) logp[i] = -logp[i];
  CHECK(max_relative_error(logp, scores, Q * N) < 1e-13, "log p = −loss");

  /* Top-k. */
  const double s[2 * 4] = {0.3, -1.0, 2.0, 0.3, -0.5, 0.1, 0.0, 0.2};
  int64_t helpful[4], harmful[4];
  CHECK_STATUS(bdl_influence_top_k(s, 2, 4, 2, helpful, harmful), BDL_OK, "");
  CHECK(helpful[0] == 2 && helpful[1] == 0 && helpful[2] == 3 && helpful[3] == 1, "helpful");
  CHECK(harmful[0] == 1 && harmful[1] == 0 && harmful[2] == 0 && harmful[3] == 2, "harmful");
  CHECK_STATUS(bdl_influence_top_k(s, 2, 4, 5, helpful, harmful), BDL_INVALID_ARGUMENT, "k = 5");

  /* The evaluations run, are seeded, and report one value per query. */
  bdl_train_params train;
  bdl_train_params_init(&train);
  train.epochs = 20;
  train.batch_size = N;
  train.learning_rate = 0.05;
  double per_query[Q], mean = 0, again = 0, top[Q], rnd[Q];
  uint64_t seeds[6] = {0};
  CHECK_STATUS(bdl_evaluation_lds(model, X, N, y, Xq, Q, yq, BDL_MEASURE_LOSS, NULL, scores, 6, 0.5, &train, 3, NULL, NULL, per_query, &mean, NULL), BDL_OK, "");
  CHECK_STATUS(bdl_evaluation_lds(model, X, N, y, Xq, Q, yq, BDL_MEASURE_LOSS, NULL, scores, 6, 0.5, &train, 3, NULL, NULL, NULL, &again, seeds), BDL_OK, "");
  CHECK(mean == again && mean >= -1 && mean <= 1, "LDS %g, again %g", mean, again);
  CHECK(seeds[0] != seeds[1] && seeds[5] != 0, "subset seeds reported");
  double lambda_p[P];
  CHECK_STATUS(bdl_influence_damping(kfac, lambda_p, P), BDL_OK, "");
  CHECK(lambda_p[0] == lambda && lambda_p[P - 1] == lambda, "absolute damping %g", lambda_p[0]);
  CHECK_STATUS(bdl_evaluation_retrain_without_top_k(model, X, N, y, Xq, Q, yq, BDL_MEASURE_LOSS, NULL, scores, 2, &train, 5, NULL, NULL, top, rnd), BDL_OK, "");
  CHECK(isfinite(top[0]) && isfinite(rnd[0]), "retraining changes are finite");
  CHECK_STATUS(bdl_evaluation_lds(model, X, N, y, Xq, Q, yq, BDL_MEASURE_LOSS, NULL, scores, 1, 0.5, &train, 3, NULL, NULL, NULL, &mean, NULL), BDL_INVALID_ARGUMENT, "subsets");
  CHECK_STATUS(bdl_evaluation_lds(model, X, N, y, Xq, Q, yq, BDL_MEASURE_LOSS, NULL, scores, 4, 1.5, &train, 3, NULL, NULL, NULL, &mean, NULL), BDL_INVALID_ARGUMENT, "fraction");

  /* Bad input. */
  bdl_influence_params params;
  bdl_influence_params_init(&params);
  params.damping = -1;
  bdl_influence *none = NULL;
  CHECK_STATUS(bdl_influence_fit(model, X, N, y, &params, NULL, NULL, &none), BDL_INVALID_ARGUMENT, "damping");
  bdl_influence_params_init(&params);
  params.curvature = 9;
  CHECK_STATUS(bdl_influence_fit(model, X, N, y, &params, NULL, NULL, &none), BDL_INVALID_ARGUMENT, "curvature");
  CHECK_STATUS(bdl_influence_scores(ekfac, model, Xq, Q, NULL, BDL_MEASURE_LOSS, NULL, NULL, NULL, scores, Q * N), BDL_INVALID_ARGUMENT, "y_query");
  CHECK_STATUS(bdl_influence_scores(ekfac, model, Xq, Q, yq, BDL_MEASURE_LOSS, NULL, NULL, NULL, scores, N), BDL_SHAPE_MISMATCH, "capacity");
  CHECK_STATUS(bdl_influence_scores(ekfac, model, Xq, Q, yq, 17, NULL, NULL, NULL, scores, Q * N), BDL_INVALID_ARGUMENT, "measurement");
  bdl_model *other = NULL;
  const bdl_layer_spec small[] = {{.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 3, .out_features = 3}};
  bdl_model_create(small, 1, INPUT, 1, 0, &other);
  CHECK_STATUS(bdl_influence_scores(ekfac, other, Xq, Q, yq, BDL_MEASURE_LOSS, NULL, NULL, NULL, scores, Q * N), BDL_SHAPE_MISMATCH, "parameters");
  CHECK_STATUS(bdl_influence_self(ekfac, other, NULL, NULL, self, N), BDL_SHAPE_MISMATCH, "parameters");
  CHECK_STATUS(bdl_influence_scores(NULL, model, Xq, Q, yq, BDL_MEASURE_LOSS, NULL, NULL, NULL, scores, Q * N), BDL_INVALID_ARGUMENT, "influence is NULL");

  bdl_influence_free(identity);
  bdl_influence_free(kfac);
  bdl_influence_free(ekfac);
  bdl_curvature_free(curvature);
  bdl_model_free(other);
  bdl_model_free(model);
  CHECK(bdl_debug_live_handles() == 0, "%lld handles leaked", (long long)bdl_debug_live_handles());
  return check_summary("test_influence");
}
