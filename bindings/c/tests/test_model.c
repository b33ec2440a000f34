/* Networks through the C ABI: construction, parameters, forward against a hand computation,
 * gradients against finite differences, statistics, training with a callback, and bad input. */
#include <bdlcore.h>
#include <stdlib.h>

#include "check.h"

/* A 3-2-2 network: Linear(3, 2) → Tanh → Linear(2, 2). */
static const bdl_layer_spec MLP[] = {
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 3, .out_features = 2},
    {.kind = BDL_LAYER_TANH},
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 2, .out_features = 2},
};
static const int64_t MLP_INPUT[] = {3};
enum { P = 3 * 2 + 2 + 2 * 2 + 2 };

/* f(x) by hand for θ in parameter-vector order (W0 (2×3), b0, W1 (2×2), b1). */
static void by_hand(const double *theta, const double *x, double *f) {
  double h[2];
  for (int i = 0; i < 2; ++i) {
    h[i] = theta[6 + i];
    for (int j = 0; j < 3; ++j) h[i] += theta[i * 3 + j] * x[j];
    h[i] = tanh(h[i]);
  }
  for (int i = 0; i < 2; ++i) f[i] = theta[12 + i] + theta[8 + i * 2] * h[0] + theta[8 + i * 2 + 1] * h[1];
}

typedef struct { int calls; int stop_after; } progress_state;

static int32_t on_epoch(const bdl_train_progress *progress, void *user_data) {
  progress_state *state = user_data;
  ++state->calls;
  return progress->epoch >= state->stop_after;
}

int main(void) {
  bdl_model *model = NULL;
  CHECK_STATUS(bdl_model_create(MLP, 3, MLP_INPUT, 1, 7, &model), BDL_OK, "");
  int64_t p = 0, c = 0, d = 0;
  CHECK_STATUS(bdl_model_sizes(model, &p, &c, &d), BDL_OK, "");
  CHECK(p == P && c == 2 && d == 3, "sizes %lld %lld %lld", (long long)p, (long long)c, (long long)d);

  double theta[P], got[P];
  for (int i = 0; i < P; ++i) theta[i] = 0.1 * (i % 5) - 0.2;
  CHECK_STATUS(bdl_model_set_parameters(model, theta, P), BDL_OK, "");
  CHECK_STATUS(bdl_model_get_parameters(model, got, P), BDL_OK, "");
  CHECK(memcmp(theta, got, sizeof theta) == 0, "parameters round-trip");

  const double X[2 * 3] = {0.5, -1.0, 2.0, 1.5, 0.3, -0.7};
  double f[4], expected[4];
  CHECK_STATUS(bdl_model_forward(model, X, 2, f, 4), BDL_OK, "");
  by_hand(theta, X, expected);
  by_hand(theta, X + 3, expected + 2);
  CHECK(max_relative_error(f, expected, 4) < 1e-14, "forward vs by hand");

  /* Jacobian and loss gradient against central finite differences. */
  double J[2 * 2 * P], loss = 0, gradient[P];
  const double labels[2] = {1, 0};
  CHECK_STATUS(bdl_model_jacobian(model, X, 2, J, 2 * 2 * P), BDL_OK, "");
  CHECK_STATUS(bdl_model_loss_gradient(model, X, 2, labels, BDL_LIKELIHOOD_CLASSIFICATION, 1, &loss, gradient, P), BDL_OK, "");
  for (int j = 0; j < P; ++j) {
    double plus[P], minus[P], fp[4], fm[4], lp, lm;
    memcpy(plus, theta, sizeof theta);
    memcpy(minus, theta, sizeof theta);
    plus[j] += 1e-6;
    minus[j] -= 1e-6;
    bdl_model_set_parameters(model, plus, P);
    bdl_model_forward(model, X, 2, fp, 4);
    bdl_model_loss_gradient(model, X, 2, labels, BDL_LIKELIHOOD_CLASSIFICATION, 1, &lp, NULL, 0);
    bdl_model_set_parameters(model, minus, P);
    bdl_model_forward(model, X, 2, fm, 4);
    bdl_model_loss_gradient(model, X, 2, labels, BDL_LIKELIHOOD_CLASSIFICATION, 1, &lm, NULL, 0);
    for (int row = 0; row < 4; ++row)
      CHECK(fabs((fp[row] - fm[row]) / 2e-6 - J[row * P + j]) < 1e-8, "J[%d, %d]", row, j);
    CHECK(fabs((lp - lm) / 2e-6 - gradient[j]) < 1e-8, "gradient[%d]", j);
  }
  bdl_model_set_parameters(model, theta, P);

  /* Statistics: shapes, and Σ_r gᵀa of the last layer equals the summed gradient block. */
  const double V[2 * 1 * 2] = {0.3, -0.2, 1.0, 0.5};
  bdl_layer_statistics *stats = NULL;
  CHECK_STATUS(bdl_model_backward_vectors(model, X, 2, V, 1, &stats), BDL_OK, "");
  int64_t count = 0, layer = 0, n = 0, k = 0, r = 0, din = 0, dout = 0;
  int32_t bias = 0;
  CHECK_STATUS(bdl_layer_statistics_count(stats, &count), BDL_OK, "");
  CHECK(count == 2, "two linear layers, got %lld", (long long)count);
  CHECK_STATUS(bdl_layer_statistics_shape(stats, 1, &layer, &n, &k, &r, &din, &dout, &bias), BDL_OK, "");
  CHECK(layer == 2 && n == 2 && k == 1 && r == 1 && din == 2 && dout == 2 && bias == 1, "shape of entry 1");
  double a[4], g[4];
  CHECK_STATUS(bdl_layer_statistics_get(stats, 1, a, 4, g, 4), BDL_OK, "");
  CHECK(memcmp(g, V, sizeof g) == 0, "the last layer's g is V itself");
  CHECK_STATUS(bdl_layer_statistics_get(stats, 1, a, 3, NULL, 0), BDL_SHAPE_MISMATCH, "out_a");
  CHECK_STATUS(bdl_layer_statistics_get(stats, 2, a, 4, g, 4), BDL_INVALID_ARGUMENT, "index = 2");
  /* In place: the same values as the copies, through pointers into the statistics. */
  const double *a_view = NULL, *g_view = NULL;
  CHECK_STATUS(bdl_layer_statistics_data(stats, 1, &a_view, &g_view), BDL_OK, "");
  CHECK(a_view != NULL && g_view != NULL && memcmp(a_view, a, sizeof a) == 0 && memcmp(g_view, g, sizeof g) == 0,
        "bdl_layer_statistics_data points at entry 1's a and g");
  CHECK_STATUS(bdl_layer_statistics_data(stats, 0, NULL, &g_view), BDL_OK, "");
  CHECK_STATUS(bdl_layer_statistics_data(stats, -1, &a_view, NULL), BDL_INVALID_ARGUMENT, "index = -1");
  CHECK_STATUS(bdl_layer_statistics_data(NULL, 0, &a_view, &g_view), BDL_INVALID_ARGUMENT, "statistics");
  bdl_layer_statistics_free(stats);

  /* Per-example gradients: row i·K + k is J(x_i)ᵀ V_{i,k} (K = 1 here). */
  double rows[2 * P];
  CHECK_STATUS(bdl_model_per_example_gradients(model, X, 2, V, 1, rows, 2 * P), BDL_OK, "");
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < P; ++j) {
      double jv = V[i * 2] * J[(i * 2) * P + j] + V[i * 2 + 1] * J[(i * 2 + 1) * P + j];
      CHECK(fabs(rows[i * P + j] - jv) < 1e-13, "per-example gradient [%d, %d]: %g vs %g", i, j, rows[i * P + j], jv);
    }
  CHECK_STATUS(bdl_model_per_example_gradients(model, X, 2, V, 1, rows, 2 * P - 1), BDL_SHAPE_MISMATCH, "out_gradients");

  /* Training: progress per epoch, early stop, reproducibility. */
  bdl_train_params params;
  CHECK_STATUS(bdl_train_params_init(&params), BDL_OK, "");
  CHECK(params.epochs == 10 && params.batch_size == 32 && params.learning_rate == 1e-3, "defaults");
  double Xt[8 * 3], yt[8];
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 3; ++j) Xt[i * 3 + j] = sin(1.0 + i * 3 + j);
    yt[i] = Xt[i * 3] > 0;
  }
  params.epochs = 5;
  params.batch_size = 3;
  params.learning_rate = 0.05;
  progress_state state = {0, 3};
  bdl_train_progress last;
  CHECK_STATUS(bdl_model_train(model, Xt, 8, yt, &params, on_epoch, &state, &last), BDL_OK, "");
  CHECK(state.calls == 3 && last.epoch == 3, "stopped after epoch 3: %d calls, last %lld", state.calls, (long long)last.epoch);
  double first_run[P], second_run[P];
  bdl_model_get_parameters(model, first_run, P);
  bdl_model_set_parameters(model, theta, P);
  state.calls = 0;
  bdl_model_train(model, Xt, 8, yt, &params, on_epoch, &state, NULL);
  bdl_model_get_parameters(model, second_run, P);
  CHECK(memcmp(first_run, second_run, sizeof first_run) == 0, "same seed, same parameters");

  /* Bad input: the documented status, a message naming the culprit, the model unchanged. */
  bdl_model *other = NULL;
  const bdl_layer_spec conv_after_flatten[] = {
      {.kind = BDL_LAYER_FLATTEN}, {.kind = BDL_LAYER_CONV2D, .bias = 1, .in_features = 1, .out_features = 2, .kernel_size = 2, .stride = 1}};
  const int64_t image[] = {1, 4, 4};
  CHECK_STATUS(bdl_model_create(conv_after_flatten, 2, image, 3, 0, &other), BDL_SHAPE_MISMATCH, "layer 2 of 2: Conv2d(1, 2");
  const bdl_layer_spec unknown[] = {{.kind = 99}};
  CHECK_STATUS(bdl_model_create(unknown, 1, MLP_INPUT, 1, 0, &other), BDL_INVALID_ARGUMENT, "layers[0].kind = 99");
  const bdl_layer_spec zero_width[] = {{.kind = BDL_LAYER_LINEAR, .in_features = 3, .out_features = 0}};
  CHECK_STATUS(bdl_model_create(zero_width, 1, MLP_INPUT, 1, 0, &other), BDL_INVALID_ARGUMENT, "out_features = 0");
  CHECK_STATUS(bdl_model_create(MLP, 3, MLP_INPUT, 4, 0, &other), BDL_INVALID_ARGUMENT, "input_rank = 4");
  CHECK_STATUS(bdl_model_create(MLP, -1, MLP_INPUT, 1, 0, &other), BDL_INVALID_ARGUMENT, "n_layers = -1");
  CHECK_STATUS(bdl_model_create(NULL, 3, MLP_INPUT, 1, 0, &other), BDL_INVALID_ARGUMENT, "layers is NULL");
  const int64_t wrong_input[] = {4};
  CHECK_STATUS(bdl_model_create(MLP, 3, wrong_input, 1, 0, &other), BDL_SHAPE_MISMATCH, "layer 1 of 3: Linear(3, 2)");
  CHECK(other == NULL, "no handle on failure");

  double before[P], after[P];
  bdl_model_get_parameters(model, before, P);
  CHECK_STATUS(bdl_model_set_parameters(model, theta, P - 1), BDL_SHAPE_MISMATCH, "count = 13");
  double with_nan[P];
  memcpy(with_nan, theta, sizeof theta);
  with_nan[4] = NAN;
  CHECK_STATUS(bdl_model_set_parameters(model, with_nan, P), BDL_NON_FINITE_INPUT, "parameters: entry 4");
  const double bad_labels[8] = {0, 1, 2, 0, 1, 0, 1, 0}, fractional[8] = {0, 1, 0.5, 0, 1, 0, 1, 0};
  CHECK_STATUS(bdl_model_train(model, Xt, 8, bad_labels, &params, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "label 2.0 of example 2");
  CHECK_STATUS(bdl_model_train(model, Xt, 8, fractional, &params, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "label 0.5");
  double X_nan[2 * 3] = {0.5, -1.0, NAN, 1.5, 0.3, -0.7};
  CHECK_STATUS(bdl_model_train(model, X_nan, 2, labels, &params, NULL, NULL, NULL), BDL_NON_FINITE_INPUT, "X: entry 2");
  bdl_train_params wrong = params;
  wrong.struct_size = 8;
  CHECK_STATUS(bdl_model_train(model, Xt, 8, yt, &wrong, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "struct_size");
  wrong = params;
  wrong.batch_size = 0;
  CHECK_STATUS(bdl_model_train(model, Xt, 8, yt, &wrong, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "batch_size = 0");
  wrong = params;
  wrong.optimizer = 7;
  CHECK_STATUS(bdl_model_train(model, Xt, 8, yt, &wrong, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "optimizer = 7");
  const double priors[2] = {1, 2};
  wrong = params;
  wrong.prior_precision = priors;
  wrong.prior_precision_count = 2;
  CHECK_STATUS(bdl_model_train(model, Xt, 8, yt, &wrong, NULL, NULL, NULL), BDL_SHAPE_MISMATCH, "one per parameter tensor (4)");
  bdl_model_get_parameters(model, after, P);
  CHECK(memcmp(before, after, sizeof before) == 0, "failed calls leave θ unchanged");

  double small[3];
  CHECK_STATUS(bdl_model_forward(model, X, 2, small, 3), BDL_SHAPE_MISMATCH, "capacity 3");
  CHECK_STATUS(bdl_model_forward(model, X, 0, f, 4), BDL_INVALID_ARGUMENT, "n = 0");
  CHECK_STATUS(bdl_model_forward(model, NULL, 2, f, 4), BDL_INVALID_ARGUMENT, "X is NULL");
  CHECK_STATUS(bdl_model_loss_gradient(model, X, 2, labels, 5, 1, &loss, NULL, 0), BDL_INVALID_ARGUMENT, "likelihood = 5");
  CHECK_STATUS(bdl_model_loss_gradient(model, X, 2, labels, BDL_LIKELIHOOD_REGRESSION, 0, &loss, NULL, 0), BDL_INVALID_ARGUMENT, "sigma = 0");
  CHECK_STATUS(bdl_model_backward_vectors(model, X, 2, V, 0, &stats), BDL_INVALID_ARGUMENT, "k = 0");
  CHECK_STATUS(bdl_model_jacobian(model, X, INT64_MAX / 2, J, 4), BDL_INVALID_ARGUMENT, "overflows");
  CHECK_STATUS(bdl_model_sizes((bdl_model *)(uintptr_t)0x1000, &p, NULL, NULL), BDL_INVALID_ARGUMENT, "not a live");
  bdl_kron_factor *not_a_model = NULL;
  const double one[1] = {1};
  bdl_kron_factor_create(one, 1, one, 1, &not_a_model);
  CHECK_STATUS(bdl_model_sizes((bdl_model *)not_a_model, &p, NULL, NULL), BDL_INVALID_ARGUMENT, "not a live");
  bdl_kron_factor_free(not_a_model);

  bdl_model_free(model);
  bdl_model_free(NULL);
  CHECK(bdl_debug_live_handles() == 0, "%lld handles leaked", (long long)bdl_debug_live_handles());
  return check_summary("test_model");
}
