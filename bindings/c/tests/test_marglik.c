/* Marginal-likelihood training through the C ABI: evidence rises over hyperparameter steps, the
 * kept model and posterior are the best step's, the result is stationary in the hyperparameters,
 * unit-wise priors work on fitted posteriors, runs are reproducible, and bad input is refused
 * without touching the model. */
#include <bdlcore.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

static const bdl_layer_spec MLP[] = {
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 3, .out_features = 5},
    {.kind = BDL_LAYER_TANH},
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 5, .out_features = 3},
};
static const int64_t INPUT[] = {3};
enum { P = 3 * 5 + 5 + 5 * 3 + 3, N = 30, C = 3, TENSORS = 4, EPOCHS = 10 };

static int calls;
static int32_t count_epochs(const bdl_marglik_progress *progress, void *user_data) {
  ++calls;
  *(int64_t *)user_data = progress->epoch;
  return 0;
}
static int32_t stop_after_three(const bdl_marglik_progress *progress, void *user_data) {
  (void)user_data;
  return progress->epoch >= 3;
}

int main(void) {
  double X[N * 3], y[N];
  for (int i = 0; i < N * 3; ++i) X[i] = 1.2 * sin(0.9 * i + 0.3);
  for (int i = 0; i < N; ++i) y[i] = (X[3 * i] + X[3 * i + 1] > 0) + (X[3 * i + 2] > 0.5);

  bdl_marglik_params params;
  CHECK_STATUS(bdl_marglik_params_init(&params), BDL_OK, "");
  CHECK(params.prior_structure == BDL_PRIOR_LAYERWISE && params.frequency == 1 && params.burnin == 0 &&
            params.laplace.structure == BDL_LAPLACE_KRON && params.train.optimizer == BDL_OPTIMIZER_ADAM,
        "defaults");
  params.train.epochs = EPOCHS;
  params.train.batch_size = 8;
  params.train.learning_rate = 0.03;
  params.frequency = 2;
  params.burnin = 2;

  const int32_t priors[] = {BDL_PRIOR_SCALAR, BDL_PRIOR_LAYERWISE, BDL_PRIOR_DIAG, BDL_PRIOR_UNITWISE};
  const int64_t prior_counts[] = {1, TENSORS, P, P};
  for (int k = 0; k < 4; ++k) {
    bdl_model *model = NULL;
    CHECK_STATUS(bdl_model_create(MLP, 3, INPUT, 1, 7, &model), BDL_OK, "");
    params.prior_structure = priors[k];
    bdl_laplace *laplace = NULL;
    bdl_marglik_progress history[EPOCHS];
    int64_t best = -1, last = 0;
    calls = 0;
    CHECK_STATUS(bdl_train_marglik(model, X, N, y, &params, count_epochs, &last, &laplace, history, EPOCHS, &best), BDL_OK, "");
    CHECK(calls == EPOCHS && last == EPOCHS, "progress: %d calls", calls);
    /* Steps after epochs 4, 6, 8, 10; the evidence rises from step to step. */
    double previous = -INFINITY, highest = -INFINITY;
    for (int e = 0; e < EPOCHS; ++e) {
      const int step = e + 1 > 2 && (e + 1 - 2) % 2 == 0;
      CHECK(history[e].hyperparameter_step == step, "prior %d epoch %d: step flag %d", priors[k], e + 1, history[e].hyperparameter_step);
      if (!step) {
        CHECK(isnan(history[e].log_marginal_likelihood), "no evidence without a step");
        continue;
      }
      CHECK(history[e].log_marginal_likelihood > previous, "prior %d: evidence %g after %g", priors[k], history[e].log_marginal_likelihood, previous);
      previous = history[e].log_marginal_likelihood;
      if (previous > highest) highest = previous;
    }
    CHECK(best >= 4 && best <= EPOCHS && history[best - 1].log_marginal_likelihood == highest, "best epoch %lld", (long long)best);
    /* The posterior is the kept one: its evidence is the best, its hyperparameters are stationary. */
    double value = 0, gradient[P];
    int64_t count = 0;
    CHECK_STATUS(bdl_laplace_hyperparameters(laplace, NULL, 0, &count, NULL, 0, NULL, NULL, NULL), BDL_OK, "");
    CHECK(count == prior_counts[k], "prior %d: %lld values", priors[k], (long long)count);
    CHECK_STATUS(bdl_laplace_log_marginal_likelihood_grad(laplace, NULL, 0, NULL, &value, gradient, P, NULL), BDL_OK, "");
    CHECK(fabs(value - highest) <= 1e-9 * fabs(highest), "evidence %.15g vs best %.15g", value, highest);
    if (priors[k] != BDL_PRIOR_UNITWISE) {
      double norm = 0;
      for (int i = 0; i < count; ++i) norm += gradient[i] * gradient[i];
      CHECK(sqrt(norm) < params.tolerance, "prior %d: gradient norm %g", priors[k], sqrt(norm));
    }
    bdl_laplace_free(laplace);
    bdl_model_free(model);
  }

  /* Unit-wise on a posterior from bdl_laplace_fit; refused on one without layer shapes. */
  {
    bdl_model *model = NULL;
    bdl_model_create(MLP, 3, INPUT, 1, 3, &model);
    bdl_laplace_params lp;
    bdl_laplace_params_init(&lp);
    lp.structure = BDL_LAPLACE_FULL;
    bdl_laplace *laplace = NULL;
    CHECK_STATUS(bdl_laplace_fit(model, X, N, y, &lp, NULL, NULL, &laplace), BDL_OK, "");
    bdl_evidence_optimum layerwise, unitwise;
    CHECK_STATUS(bdl_laplace_optimize_prior_precision(laplace, BDL_PRIOR_LAYERWISE, 0, 1e-9, 0, &layerwise), BDL_OK, "");
    CHECK_STATUS(bdl_laplace_optimize_prior_precision(laplace, BDL_PRIOR_UNITWISE, 0, 1e-8, 0, &unitwise), BDL_OK, "");
    CHECK(unitwise.converged && unitwise.log_marginal_likelihood >= layerwise.log_marginal_likelihood - 1e-9 * fabs(layerwise.log_marginal_likelihood),
          "unit-wise %.12g vs layerwise %.12g", unitwise.log_marginal_likelihood, layerwise.log_marginal_likelihood);
    CHECK_STATUS(bdl_laplace_optimize_prior_precision(laplace, 9, 0, 0, 0, &unitwise), BDL_INVALID_ARGUMENT, "BDL_PRIOR_");
    bdl_curvature_params cp;
    bdl_curvature_params_init(&cp);
    cp.kind = BDL_CURVATURE_DIAG_GGN;
    bdl_curvature *curvature = NULL;
    bdl_curvature_fit(model, X, N, y, &cp, &curvature);
    double theta[P];
    bdl_model_get_parameters(model, theta, P);
    bdl_laplace *bare = NULL;
    CHECK_STATUS(bdl_laplace_from_curvature(curvature, theta, P, NULL, 0, 10.0, N, C, NULL, &bare), BDL_OK, "");
    CHECK_STATUS(bdl_laplace_optimize_prior_precision(bare, BDL_PRIOR_UNITWISE, 0, 0, 0, &unitwise), BDL_INVALID_ARGUMENT, "layer shapes");
    bdl_laplace_free(bare);
    bdl_curvature_free(curvature);
    bdl_laplace_free(laplace);
    bdl_model_free(model);
  }

  /* Reproducible for a seed; the callback can stop the run; bad input leaves θ unchanged. */
  {
    bdl_model *a = NULL, *b = NULL;
    bdl_model_create(MLP, 3, INPUT, 1, 11, &a);
    bdl_model_create(MLP, 3, INPUT, 1, 11, &b);
    params.prior_structure = BDL_PRIOR_LAYERWISE;
    bdl_laplace *la = NULL, *lb = NULL;
    CHECK_STATUS(bdl_train_marglik(a, X, N, y, &params, NULL, NULL, &la, NULL, 0, NULL), BDL_OK, "");
    CHECK_STATUS(bdl_train_marglik(b, X, N, y, &params, NULL, NULL, &lb, NULL, 0, NULL), BDL_OK, "");
    double ta[P], tb[P];
    bdl_model_get_parameters(a, ta, P);
    bdl_model_get_parameters(b, tb, P);
    CHECK(memcmp(ta, tb, sizeof ta) == 0, "two runs with one seed differ");
    bdl_laplace_free(la);
    bdl_laplace_free(lb);

    bdl_marglik_progress history[EPOCHS];
    int64_t best = -1;
    CHECK_STATUS(bdl_train_marglik(a, X, N, y, &params, stop_after_three, NULL, &la, history, EPOCHS, &best), BDL_OK, "");
    CHECK(best == 0 || best == 3 || best == 4, "stopped run kept epoch %lld", (long long)best);
    bdl_laplace_free(la);

    bdl_model_get_parameters(a, ta, P);
    bdl_laplace *none = NULL;
    bdl_marglik_params bad = params;
    bad.frequency = 0;
    CHECK_STATUS(bdl_train_marglik(a, X, N, y, &bad, NULL, NULL, &none, NULL, 0, NULL), BDL_INVALID_ARGUMENT, "frequency");
    bad = params;
    bad.prior_structure = 0;
    CHECK_STATUS(bdl_train_marglik(a, X, N, y, &bad, NULL, NULL, &none, NULL, 0, NULL), BDL_INVALID_ARGUMENT, "prior_structure");
    bad = params;
    bad.laplace.subset = BDL_SUBSET_LAST_LAYER;
    CHECK_STATUS(bdl_train_marglik(a, X, N, y, &bad, NULL, NULL, &none, NULL, 0, NULL), BDL_INVALID_ARGUMENT, "subset");
    bad = params;
    bad.struct_size = 3;
    CHECK_STATUS(bdl_train_marglik(a, X, N, y, &bad, NULL, NULL, &none, NULL, 0, NULL), BDL_INVALID_ARGUMENT, "struct_size");
    bad = params;
    const double zero = 0;
    bad.train.prior_precision = &zero;
    bad.train.prior_precision_count = 1;
    CHECK_STATUS(bdl_train_marglik(a, X, N, y, &bad, NULL, NULL, &none, NULL, 0, NULL), BDL_INVALID_ARGUMENT, "prior precision");
    CHECK_STATUS(bdl_train_marglik(a, X, N, y, &params, NULL, NULL, &none, history, 2, NULL), BDL_SHAPE_MISMATCH, "out_history");
    CHECK_STATUS(bdl_train_marglik(a, NULL, N, y, &params, NULL, NULL, &none, NULL, 0, NULL), BDL_INVALID_ARGUMENT, "X");
    CHECK_STATUS(bdl_train_marglik(a, X, -1, y, &params, NULL, NULL, &none, NULL, 0, NULL), BDL_INVALID_ARGUMENT, "n");
    CHECK_STATUS(bdl_train_marglik(NULL, X, N, y, &params, NULL, NULL, &none, NULL, 0, NULL), BDL_INVALID_ARGUMENT, "model");
    CHECK_STATUS(bdl_train_marglik(a, X, N, y, &params, NULL, NULL, NULL, NULL, 0, NULL), BDL_INVALID_ARGUMENT, "out_laplace");
    double labels[N];
    memcpy(labels, y, sizeof labels);
    labels[4] = 7;
    CHECK_STATUS(bdl_train_marglik(a, X, N, labels, &params, NULL, NULL, &none, NULL, 0, NULL), BDL_INVALID_ARGUMENT, "");
    CHECK(none == NULL, "no handle on error");
    bdl_model_get_parameters(a, tb, P);
    CHECK(memcmp(ta, tb, sizeof ta) == 0, "a refused call changed θ");
    bdl_model_free(a);
    bdl_model_free(b);
  }
  CHECK(bdl_debug_live_handles() == 0, "%lld handles leaked", (long long)bdl_debug_live_handles());
  return check_summary("test_marglik");
}
