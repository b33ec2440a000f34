/* Model selection through the C ABI: the NTK bound with one batch equals the full-GGN Laplace
 * evidence (and its gradient) of bdl_laplace_fit; every partition lies below it; the stochastic
 * estimates average to the partitioned value; bad input gives the documented status. */
#include <bdlcore.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

static const bdl_layer_spec CLASSIFIER[] = {
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 3, .out_features = 4},
    {.kind = BDL_LAYER_TANH},
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 4, .out_features = 3},
};
static const bdl_layer_spec REGRESSOR[] = {
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 3, .out_features = 5},
    {.kind = BDL_LAYER_RELU},
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 5, .out_features = 2},
};
static const int64_t INPUT[] = {3};
enum { N = 8, C = 3, TENSORS = 4 };

/* The kernel form and the P × P Cholesky agree to rounding (≈ 1e-13 here); 1e-8 is the contract. */
#define KERNEL_FORM_TOL 1e-8
/* Fischer's inequality is exact; this covers rounding of log-determinants of size ≈ 10. */
#define FISCHER_SLACK 1e-9

/* The full-GGN Laplace evidence and its gradient at the given prior and σ. */
static void laplace_evidence(const bdl_model *model, const double *X, const double *y, int32_t likelihood,
                             const double *prior, int64_t count, double sigma, double *value, double *grad,
                             double *grad_sigma) {
  bdl_laplace_params params;
  bdl_laplace_params_init(&params);
  params.likelihood = likelihood;
  params.structure = BDL_LAPLACE_FULL;
  params.batch_size = 3;
  params.prior_precision = prior;
  params.prior_precision_count = count;
  params.sigma_noise = sigma;
  bdl_laplace *laplace = NULL;
  CHECK_STATUS(bdl_laplace_fit(model, X, N, y, &params, NULL, NULL, &laplace), BDL_OK, "");
  CHECK_STATUS(bdl_laplace_log_marginal_likelihood_grad(laplace, NULL, 0, NULL, value, grad, count, grad_sigma), BDL_OK, "");
  bdl_laplace_free(laplace);
}

static bdl_ntk_bound_params bound_params(int32_t likelihood, const double *prior, int64_t count, double sigma) {
  bdl_ntk_bound_params params;
  bdl_ntk_bound_params_init(&params);
  params.likelihood = likelihood;
  params.prior_precision = prior;
  params.prior_precision_count = count;
  params.sigma_noise = sigma;
  return params;
}

/* One batch equals the Laplace evidence; partitions are below it; estimates average to them. */
static void check_model(const bdl_model *model, const double *X, const double *y, int32_t likelihood, double sigma,
                        const char *name) {
  const double scalar[1] = {0.8}, layerwise[TENSORS] = {0.5, 1.5, 0.8, 2.5};
  const double *priors[2] = {scalar, layerwise};
  const int64_t counts[2] = {1, TENSORS};
  for (int k = 0; k < 2; ++k) {
    double expected = 0, expected_grad[TENSORS], expected_sigma = 0;
    laplace_evidence(model, X, y, likelihood, priors[k], counts[k], sigma, &expected, expected_grad, &expected_sigma);
    bdl_ntk_bound_params params = bound_params(likelihood, priors[k], counts[k], sigma);
    double value = 0, grad[TENSORS], grad_sigma = -1;
    int64_t batches = 0;
    CHECK_STATUS(bdl_ntk_evidence_bound(model, X, N, y, &params, &value, grad, &grad_sigma, &batches), BDL_OK, "");
    CHECK(batches == 1, "%s: %lld batches by default", name, (long long)batches);
    CHECK(fabs(value - expected) <= KERNEL_FORM_TOL * fabs(expected), "%s prior %d: bound %.15g vs Laplace %.15g", name, k, value, expected);
    CHECK(max_relative_error(grad, expected_grad, (size_t)counts[k]) <= KERNEL_FORM_TOL, "%s prior %d: ∂/∂log δ differs", name, k);
    CHECK(fabs(grad_sigma - expected_sigma) <= KERNEL_FORM_TOL * fmax(1, fabs(expected_sigma)),
          "%s prior %d: ∂/∂log σ %.15g vs %.15g", name, k, grad_sigma, expected_sigma);

    for (int64_t b = 1; b < N; ++b) {
      for (int grouped = 0; grouped <= (likelihood == BDL_LIKELIHOOD_CLASSIFICATION); ++grouped) {
        params.batch_size = b;
        params.group_by_class = grouped;
        double partitioned = 0;
        CHECK_STATUS(bdl_ntk_evidence_bound(model, X, N, y, &params, &partitioned, NULL, NULL, &batches), BDL_OK, "");
        CHECK(batches == (N + b - 1) / b, "%s B = %lld: %lld batches", name, (long long)b, (long long)batches);
        CHECK(partitioned <= expected + FISCHER_SLACK * fabs(expected), "%s B = %lld%s: %.15g above the evidence %.15g", name,
              (long long)b, grouped ? " grouped" : "", partitioned, expected);
        /* The estimates of all batches average to the partitioned value. */
        double sum = 0;
        for (int64_t i = 0; i < batches; ++i) {
          params.batch_index = i;
          double estimate = 0;
          CHECK_STATUS(bdl_ntk_evidence_bound(model, X, N, y, &params, &estimate, NULL, NULL, NULL), BDL_OK, "");
          sum += estimate;
        }
        params.batch_index = -1;
        CHECK(fabs(sum / batches - partitioned) <= 1e-11 * fabs(partitioned), "%s B = %lld: mean estimate %.15g vs %.15g", name,
              (long long)b, sum / batches, partitioned);
      }
    }
    params.group_by_class = 0;
  }
}

int main(void) {
  bdl_model *classifier = NULL, *regressor = NULL;
  CHECK_STATUS(bdl_model_create(CLASSIFIER, 3, INPUT, 1, 5, &classifier), BDL_OK, "");
  CHECK_STATUS(bdl_model_create(REGRESSOR, 3, INPUT, 1, 6, &regressor), BDL_OK, "");
  double X[N * 3], labels[N], targets[N * 2];
  for (int i = 0; i < N * 3; ++i) X[i] = 1.3 * cos(1.7 * i);
  for (int i = 0; i < N; ++i) labels[i] = i % C;
  for (int i = 0; i < N * 2; ++i) targets[i] = sin(0.9 * i);

  check_model(classifier, X, labels, BDL_LIKELIHOOD_CLASSIFICATION, 1.0, "classification");
  check_model(regressor, X, targets, BDL_LIKELIHOOD_REGRESSION, 0.7, "regression");

  /* Independent outputs: a value and a gradient of the right length; single-output estimates. */
  bdl_ntk_bound_params params = bound_params(BDL_LIKELIHOOD_CLASSIFICATION, NULL, 0, 1);
  params.independent_outputs = 1;
  double value = 0, grad[TENSORS];
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &params, &value, grad, NULL, NULL), BDL_OK, "");
  CHECK(isfinite(value) && isfinite(grad[0]), "independent outputs: %g, %g", value, grad[0]);
  params.batch_index = 0;
  params.output_index = 2;
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &params, &value, NULL, NULL, NULL), BDL_OK, "");

  /* Bad input. */
  params = bound_params(BDL_LIKELIHOOD_CLASSIFICATION, NULL, 0, 1);
  CHECK_STATUS(bdl_ntk_evidence_bound(NULL, X, N, labels, &params, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "model");
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, NULL, N, labels, &params, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "X");
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, 0, labels, &params, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "n");
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, NULL, &params, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "y");
  double bad_labels[N];
  for (int i = 0; i < N; ++i) bad_labels[i] = i % C;
  bad_labels[2] = C;
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, bad_labels, &params, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "label");
  double nan_X[N * 3];
  for (int i = 0; i < N * 3; ++i) nan_X[i] = X[i];
  nan_X[4] = NAN;
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, nan_X, N, labels, &params, &value, NULL, NULL, NULL), BDL_NON_FINITE_INPUT, "X");

  bdl_ntk_bound_params bad = params;
  bad.struct_size = 4;
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &bad, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "struct_size");
  bad = params;
  bad.likelihood = 7;
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &bad, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "likelihood");
  bad = params;
  bad.batch_size = -1;
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &bad, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "batch_size");
  bad = params;
  bad.independent_outputs = 2;
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &bad, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "independent_outputs");
  bad = params;
  bad.batch_size = 3;
  bad.batch_index = 3;
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &bad, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "batch_index");
  bad.batch_index = -2;
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &bad, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "batch_index");
  bad.batch_index = 0;
  bad.output_index = 1;
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &bad, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "independent outputs");
  bad.batch_index = -1;
  bad.independent_outputs = 1;
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &bad, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "batch_index");
  const double three[3] = {1, 2, 3}, zero[1] = {0};
  double per_parameter[3 * 4 + 4 + 4 * 3 + 3];
  for (size_t i = 0; i < sizeof per_parameter / sizeof *per_parameter; ++i) per_parameter[i] = 1;
  bad = bound_params(BDL_LIKELIHOOD_CLASSIFICATION, three, 3, 1);
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &bad, &value, NULL, NULL, NULL), BDL_SHAPE_MISMATCH, "prior precision");
  bad = bound_params(BDL_LIKELIHOOD_CLASSIFICATION, per_parameter, sizeof per_parameter / sizeof *per_parameter, 1);
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &bad, &value, NULL, NULL, NULL), BDL_UNSUPPORTED, "per parameter");
  bad = bound_params(BDL_LIKELIHOOD_CLASSIFICATION, zero, 1, 1);
  CHECK_STATUS(bdl_ntk_evidence_bound(classifier, X, N, labels, &bad, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "prior precision");
  bad = bound_params(BDL_LIKELIHOOD_REGRESSION, NULL, 0, 0);
  CHECK_STATUS(bdl_ntk_evidence_bound(regressor, X, N, targets, &bad, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "sigma");
  bad = bound_params(BDL_LIKELIHOOD_REGRESSION, NULL, 0, 1);
  bad.group_by_class = 1;
  CHECK_STATUS(bdl_ntk_evidence_bound(regressor, X, N, targets, &bad, &value, NULL, NULL, NULL), BDL_INVALID_ARGUMENT, "group_by_class");
  CHECK_STATUS(bdl_ntk_bound_params_init(NULL), BDL_INVALID_ARGUMENT, "params");

  bdl_model_free(classifier);
  bdl_model_free(regressor);
  CHECK(bdl_debug_live_handles() == 0, "%lld handles alive at the end", (long long)bdl_debug_live_handles());
  return check_summary("test_model_selection");
}
