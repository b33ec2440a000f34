/* bdlcore from C: train a network and one prior precision per parameter by the evidence
 * (marginal-likelihood training, no validation set), then prune it by optimal posterior damage
 * — SpaM — and report what is left. No Python, no PyTorch.
 *
 *   cc spam_quickstart.c -Iinclude -L.build/release -lbdlcore -lm -o spam_quickstart
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

enum { N = 400, P = 2 * 32 + 32 + 32 * 2 + 2, EPOCHS = 100 };

/* Prints the evidence after every hyperparameter step. */
static int32_t report(const bdl_marglik_progress *progress, void *user_data) {
  (void)user_data;
  if (progress->hyperparameter_step && progress->epoch % 25 == 0)
    printf("epoch %3lld: objective %.4f, log evidence %.2f\n", (long long)progress->epoch, progress->objective,
           progress->log_marginal_likelihood);
  return 0;
}

int main(void) {
  /* The label is the sign of x0·x1. */
  static double X[N * 2], y[N];
  for (int i = 0; i < N; ++i) {
    X[2 * i] = sin(1.7 * i + 0.3);
    X[2 * i + 1] = cos(2.3 * i);
    y[i] = X[2 * i] * X[2 * i + 1] > 0;
  }
  const bdl_layer_spec layers[] = {
      {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 2, .out_features = 32},
      {.kind = BDL_LAYER_TANH},
      {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 32, .out_features = 2},
  };
  const int64_t input_shape[] = {2};
  bdl_model *model = NULL;
  TRY(bdl_model_create(layers, 3, input_shape, 1, /*seed*/ 0, &model));

  /* MAP steps with Adam; every 5 epochs a K-FAC Laplace refit and the evidence-optimal δ, one per
   * parameter (stored per parameter, entering K-FAC through its eigenbasis projection). */
  bdl_marglik_params params;
  bdl_marglik_params_init(&params);
  params.train.learning_rate = 0.01;
  params.train.epochs = EPOCHS;
  params.prior_structure = BDL_PRIOR_DIAG;
  params.frequency = 5;
  bdl_laplace *laplace = NULL;
  int64_t kept = 0;
  TRY(bdl_train_marglik(model, X, N, y, &params, report, NULL, &laplace, NULL, 0, &kept));

  /* OPD = P_ii·θ_i² with P the posterior precision (the learned prior inside); remove half of the
   * weights with the smallest scores, then count what is left. */
  double scores[P], mask[P];
  TRY(bdl_pruning_scores(laplace, model, BDL_PRUNING_OPD, 0, 0, scores, P, NULL));
  TRY(bdl_pruning_mask(model, scores, P, 0.5, 0, NULL, 0, 0, mask, P));
  TRY(bdl_model_apply_mask(model, mask, P));
  bdl_layer_sparsity sparsity[2];
  TRY(bdl_model_sparsity(model, mask, P, sparsity, 2, NULL));
  double f[N * 2];
  TRY(bdl_model_forward(model, X, N, f, N * 2));
  int correct = 0;
  for (int i = 0; i < N; ++i) correct += (f[2 * i + 1] > f[2 * i]) == (y[i] > 0.5);
  printf("kept epoch %lld; after pruning half of the weights: layer 0 keeps %lld of %lld, layer 2 %lld of %lld; "
         "training accuracy %.3f\n",
         (long long)kept, (long long)sparsity[0].weights_kept, (long long)sparsity[0].weights,
         (long long)sparsity[1].weights_kept, (long long)sparsity[1].weights, (double)correct / N);

  bdl_laplace_free(laplace);
  bdl_model_free(model);
  return kept > 0 && correct > N * 0.9 ? 0 : 1;
}
