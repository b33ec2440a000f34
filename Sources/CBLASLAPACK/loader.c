/*
 * The OpenBLAS/LAPACKE loader: see cblaslapack.h for why bdlcore loads them lazily.
 */
#define _GNU_SOURCE
#include "cblaslapack.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cbl_api api;
static const cbl_api *loaded_api;
static char load_error[1024];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

int cbl_cpu_has_avx512(void) {
  __builtin_cpu_init();
  /* OpenBLAS's SkylakeX kernels need F, BW, DQ and VL. */
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

int cbl_cpu_has_avx2(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

const char *cbl_preferred_core(void) {
  __builtin_cpu_init();
  if (cbl_cpu_has_avx512()) return "SkylakeX";
  /* OpenBLAS's Zen and Haswell cores share AVX2 kernels but differ in blocking: on an AMD EPYC
   * here Zen ran dgemm at 72 GFLOP/s and Haswell at 63. */
  if (cbl_cpu_has_avx2()) return __builtin_cpu_is("amd") ? "Zen" : "Haswell";
  return NULL;
}

static void copy_text(char *dst, size_t capacity, const char *src) {
  snprintf(dst, capacity, "%s", src ? src : "");
}

/* The file a handle was loaded from, as the dynamic loader resolved it. */
static void library_path(void *handle, char *dst, size_t capacity) {
  struct link_map *map = NULL;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name)
    copy_text(dst, capacity, map->l_name);
}

/* Opens the first of the candidate files that loads; records every failure in load_error. */
static void *open_first(const char *override_variable, const char *const *candidates, int flags,
                        const char *what) {
  const char *override = getenv(override_variable);
  char tried[768] = "";
  if (override && *override) {
    void *handle = dlopen(override, flags);
    if (handle) return handle;
    snprintf(load_error, sizeof load_error, "could not load %s from %s=%s: %s", what,
             override_variable, override, dlerror());
    return NULL;
  }
  for (const char *const *name = candidates; *name; ++name) {
    void *handle = dlopen(*name, flags);
    if (handle) return handle;
    size_t used = strlen(tried);
    snprintf(tried + used, sizeof tried - used, "%s%s", used ? ", " : "", *name);
  }
  snprintf(load_error, sizeof load_error,
           "could not load %s (tried %s; set %s to its path, or install it: on Debian/Ubuntu "
           "`apt-get install libopenblas-dev liblapacke-dev`)",
           what, tried, override_variable);
  return NULL;
}

#define RESOLVE(handle, field, symbol)                                                      \
  do {                                                                                      \
    *(void **)(&api.field) = dlsym(handle, symbol);                                         \
    if (!api.field) {                                                                       \
      snprintf(load_error, sizeof load_error, "symbol %s not found in %s", symbol,          \
               handle == openblas ? api.openblas_library : api.lapacke_library);            \
      return;                                                                               \
    }                                                                                       \
  } while (0)

static void load_libraries(void) {
  static const char *const openblas_names[] = {"libopenblas.so.0", "libopenblas.so",
                                               "libopenblasp.so.0", "libopenblaso.so.0", NULL};
  static const char *const lapacke_names[] = {"liblapacke.so.3", "liblapacke.so", NULL};

  const char *user_core = getenv("OPENBLAS_CORETYPE");
  int already_loaded = 0;
  for (const char *const *name = openblas_names; *name && !already_loaded; ++name) {
    void *handle = dlopen(*name, RTLD_NOW | RTLD_NOLOAD);
    if (handle) { already_loaded = 1; dlclose(handle); }
  }

  int chose_core = 0;
  if (already_loaded) {
    api.core_source = CBL_CORE_PRELOADED;
  } else if (user_core && *user_core) {
    api.core_source = CBL_CORE_FROM_USER;
    copy_text(api.requested_core, sizeof api.requested_core, user_core);
  } else {
    const char *choice = cbl_preferred_core();
    if (choice) {
      setenv("OPENBLAS_CORETYPE", choice, 0);
      chose_core = 1;
      api.core_source = CBL_CORE_FROM_BDLCORE;
      copy_text(api.requested_core, sizeof api.requested_core, choice);
    } else {
      api.core_source = CBL_CORE_FROM_OPENBLAS;
    }
  }

  /* RTLD_GLOBAL: LAPACK routines that LAPACKE calls then resolve to OpenBLAS's optimised ones. */
  void *openblas = open_first("BDLCORE_OPENBLAS_LIBRARY", openblas_names, RTLD_NOW | RTLD_GLOBAL,
                              "OpenBLAS");
  /* OpenBLAS read the variable while it was initialised; do not leak our choice to children. */
  if (chose_core) unsetenv("OPENBLAS_CORETYPE");
  if (!openblas) return;
  library_path(openblas, api.openblas_library, sizeof api.openblas_library);

  void *lapacke = open_first("BDLCORE_LAPACKE_LIBRARY", lapacke_names, RTLD_NOW | RTLD_GLOBAL,
                             "LAPACKE");
  if (!lapacke) return;
  library_path(lapacke, api.lapacke_library, sizeof api.lapacke_library);

  char *(*get_corename)(void) = NULL;
  char *(*get_config)(void) = NULL;
  *(void **)(&get_corename) = dlsym(openblas, "openblas_get_corename");
  *(void **)(&get_config) = dlsym(openblas, "openblas_get_config");
  *(void **)(&api.get_num_threads) = dlsym(openblas, "openblas_get_num_threads");
  *(void **)(&api.set_num_threads) = dlsym(openblas, "openblas_set_num_threads");
  if (!get_corename || !get_config || !api.get_num_threads || !api.set_num_threads) {
    snprintf(load_error, sizeof load_error,
             "%s is not OpenBLAS (openblas_get_corename/config/get_num_threads/set_num_threads missing)",
             api.openblas_library);
    return;
  }
  copy_text(api.core, sizeof api.core, get_corename());
  copy_text(api.config, sizeof api.config, get_config());
  if (strstr(api.config, "USE64BITINT")) {
    snprintf(load_error, sizeof load_error,
             "%s is an ILP64 (64-bit integer) build; bdlcore needs the LP64 interface",
             api.openblas_library);
    return;
  }

  RESOLVE(openblas, dgemm, "cblas_dgemm");
  RESOLVE(openblas, dsyrk, "cblas_dsyrk");
  RESOLVE(openblas, dgemv, "cblas_dgemv");
  RESOLVE(openblas, dtrsm, "cblas_dtrsm");
  RESOLVE(openblas, ddot, "cblas_ddot");
  RESOLVE(openblas, daxpy, "cblas_daxpy");
  RESOLVE(openblas, dscal, "cblas_dscal");
  RESOLVE(lapacke, dsytrd, "LAPACKE_dsytrd");
  RESOLVE(lapacke, dsterf, "LAPACKE_dsterf");
  RESOLVE(lapacke, dstedc, "LAPACKE_dstedc");
  RESOLVE(lapacke, dormtr, "LAPACKE_dormtr");
  RESOLVE(lapacke, dpotrf, "LAPACKE_dpotrf");
  RESOLVE(lapacke, dpotrs, "LAPACKE_dpotrs");
  RESOLVE(lapacke, dpotri, "LAPACKE_dpotri");
  RESOLVE(lapacke, dgesdd, "LAPACKE_dgesdd");
  loaded_api = &api;
}

const cbl_api *cbl_load(void) {
  pthread_once(&load_once, load_libraries);
  return loaded_api;
}

const char *cbl_load_error(void) {
  cbl_load();
  return load_error;
}
