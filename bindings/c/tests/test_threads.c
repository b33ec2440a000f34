/* The threading contract of bdlcore.h: functions are reentrant, distinct handles may be used
 * concurrently, and the last error message is per thread. */
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

int main(void) {
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
