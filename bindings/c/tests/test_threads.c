/* The threading contract of bdlcore.h: functions are reentrant, distinct handles may be used
 * concurrently, the last error message is per thread, and a curvature pass that shards its
 * batches over the OpenBLAS threads restores OpenBLAS's thread count, also when such passes
 * overlap. */
#include <bdlcore.h>
#include <pthread.h>
#include <stdlib.h>

#include "check.h"

enum { THREADS = 4, ROUNDS = 200 };

typedef struct {
  int id;
  int wrong_messages;
  int wrong_values;
} worker_state;

static void *worker(void *argument) {
  worker_state *state = argument;
  const double b[4] = {2, 0.5, 0.5, 1};
  const double a[4] = {1 + state->id, 0, 0, 1};
  double first = 0;
  bdl_kron_factor *factor = NULL;
  if (bdl_kron_factor_create(b, 2, a, 2, &factor) != BDL_OK) { state->wrong_values = -1; return NULL; }
  for (int round = 0; round < ROUNDS; ++round) {
    double logdet = 0;
    if (bdl_kron_factor_logdet(factor, 1.0, 0.1, &logdet) != BDL_OK) ++state->wrong_values;
    if (round == 0) first = logdet;
    if (logdet != first) ++state->wrong_values;
    /* Each thread fails with its own argument value; the message must be its own. */
    char fragment[64];
    snprintf(fragment, sizeof fragment, "nb = -%d", state->id + 1);
    bdl_kron_logdet(b, -(state->id + 1), a, 2, 1, 0.1, &logdet);
    if (strstr(bdl_last_error_message(), fragment) == NULL) ++state->wrong_messages;
  }
  bdl_kron_factor_free(factor);
  return NULL;
}

/* A K-FAC Laplace fit of a 256-256-10 MLP at batch 256: ~17 M forward multiply-adds per batch,
 * enough for the pass to run one shard per OpenBLAS thread. */
static void *laplace_fit(void *argument) {
  int *failures = argument;
  const bdl_layer_spec layers[3] = {
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 256, .out_features = 256},
    {.kind = BDL_LAYER_RELU},
    {.kind = BDL_LAYER_LINEAR, .bias = 1, .in_features = 256, .out_features = 10},
  };
  const int64_t shape[1] = {256};
  enum { N = 512 };
  double *X = malloc(sizeof(double) * N * 256), y[N];
  for (int i = 0; i < N * 256; ++i) X[i] = (double)((i * 7919) % 2003) / 1001.0 - 1.0;
  for (int i = 0; i < N; ++i) y[i] = i % 10;
  bdl_model *model = NULL;
  bdl_laplace *laplace = NULL;
  if (bdl_model_create(layers, 3, shape, 1, 0, &model) != BDL_OK) ++*failures;
  else if (bdl_laplace_fit(model, X, N, y, NULL, NULL, NULL, &laplace) != BDL_OK) ++*failures;
  bdl_laplace_free(laplace);
  bdl_model_free(model);
  free(X);
  return NULL;
}

static int32_t blas_threads(void) {
  bdl_blas_info_t info = {.struct_size = sizeof info};
  return bdl_blas_info(&info) == BDL_OK ? info.num_threads : -1;
}

int main(void) {
  const int32_t before = blas_threads();
  int failures[2] = {0, 0};
  laplace_fit(&failures[0]);
  CHECK(failures[0] == 0, "the fit failed: %s", bdl_last_error_message());
  CHECK(blas_threads() == before, "OpenBLAS threads %d after a fit, %d before", blas_threads(), before);
  pthread_t fits[2];
  for (int i = 0; i < 2; ++i) pthread_create(&fits[i], NULL, laplace_fit, &failures[i]);
  for (int i = 0; i < 2; ++i) pthread_join(fits[i], NULL);
  CHECK(failures[0] + failures[1] == 0, "%d concurrent fits failed", failures[0] + failures[1]);
  CHECK(blas_threads() == before, "OpenBLAS threads %d after concurrent fits, %d before", blas_threads(), before);

  pthread_t threads[THREADS];
  worker_state states[THREADS];
  for (int i = 0; i < THREADS; ++i) {
    states[i] = (worker_state){.id = i};
    pthread_create(&threads[i], NULL, worker, &states[i]);
  }
  for (int i = 0; i < THREADS; ++i) pthread_join(threads[i], NULL);
  for (int i = 0; i < THREADS; ++i) {
    CHECK(states[i].wrong_values == 0, "thread %d: %d wrong log dets", i, states[i].wrong_values);
    CHECK(states[i].wrong_messages == 0, "thread %d: %d foreign error messages", i, states[i].wrong_messages);
  }
  CHECK(bdl_debug_live_handles() == 0, "%lld handles leaked", (long long)bdl_debug_live_handles());
  return check_summary("test_threads");
}
