/* bdlcore from C: train a small network, fit a K-FAC Laplace posterior around it, choose the
 * per-tensor prior precision by maximising the evidence, and predict with the linearised
 * (probit) predictive — no Python, no PyTorch.
 *
 *   cc laplace_quickstart.c -Iinclude -L.build/release -lbdlcore -lm -o laplace_quickstart
 */
#include <bdlcore.h>
#include <math.h>
#include <stdio.h>

#define TRY(call)                                                                          \
  do {                                                                                     \
    bdl_status status_ = (call);                                                           \
    if (status_ != BDL_OK) {                                                               \
      fprintf(stderr, "%s: %s: %s\n", #call, bdl_status_string(status_), bdl_last_error_message()); \
      return 1;                                                                            \
    }                                                                                      \
  } while (0)

enum { N = 400 };

int main(void) {
  /* Two interleaved spirals' worth of points: the label is the sign of x0·x1. */
  static double X[N * 2], y[N];
  for (int i = 0; i < N; ++i) {
    X[2 * i] = sin(1.7 * i + 0.3);
    X[2 * i + 1] = cos(2.3 * i);
    y[i] = X[2 * i] * X[2 * i + 1] > 0;
  }
  const bdl_layer_spec layers[] = {
      {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 2, .out_features = 16},
      {.kind = BDL_LAYER_TANH},
      {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 16, .out_features = 2},
  };
  const int64_t input_shape[] = {2};
  bdl_model *model = NULL;
  TRY(bdl_model_create(layers, 3, input_shape, 1, /*seed*/ 0, &model));

  bdl_train_params train;
  bdl_train_params_init(&train);
  train.learning_rate = 0.01;
  train.epochs = 200;
  TRY(bdl_model_train(model, X, N, y, &train, NULL, NULL, NULL));

  /* P = G_KFAC + diag(δ), δ one value per parameter tensor (W₀, b₀, W₁, b₁). */
  bdl_laplace_params params;
  bdl_laplace_params_init(&params);
  params.structure = BDL_LAPLACE_KRON;
  bdl_laplace *laplace = NULL;
  TRY(bdl_laplace_fit(model, X, N, y, &params, NULL, NULL, &laplace));
  double evidence = 0;
  TRY(bdl_laplace_log_marginal_likelihood(laplace, NULL, 0, NULL, &evidence));
  printf("log evidence at δ = 1: %.4f\n", evidence);

  bdl_evidence_optimum optimum;
  TRY(bdl_laplace_optimize_prior_precision(laplace, BDL_PRIOR_LAYERWISE, 0, 0, 0, &optimum));
  double prior[4];
  TRY(bdl_laplace_hyperparameters(laplace, prior, 4, NULL, NULL, 0, NULL, NULL, NULL));
  printf("evidence-optimal δ = %.3g %.3g %.3g %.3g: log evidence %.4f (‖∇‖ = %.1e, %lld Newton steps)\n",
         prior[0], prior[1], prior[2], prior[3], optimum.log_marginal_likelihood, optimum.gradient_norm,
         (long long)optimum.iterations);

  /* Class probabilities near the decision boundary and far from the data. */
  const double queries[3 * 2] = {0.5, 0.5, 0.05, -0.05, 4.0, -4.0};
  double probs[3 * 2];
  TRY(bdl_laplace_predict(laplace, model, queries, 3, BDL_LINK_PROBIT, 0, 0, probs, 3 * 2));
  for (int q = 0; q < 3; ++q)
    printf("p(y = 1 | x = (%.2f, %.2f)) = %.3f\n", queries[2 * q], queries[2 * q + 1], probs[2 * q + 1]);

  bdl_laplace_free(laplace);
  bdl_model_free(model);
  return optimum.converged ? 0 : 1;
}
