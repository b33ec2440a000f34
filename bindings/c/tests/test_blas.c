/* The BLAS backend: loaded lazily, with the best kernel family for this CPU. */
#include <bdlcore.h>
#include <ctype.h>
#include <stdlib.h>
#include <strings.h>

#include "check.h"

static int one_of(const char *core, const char *const *names) {
  for (; *names; ++names)
    if (strcasecmp(core, *names) == 0) return 1;
  return 0;
}

int main(void) {
  const char *user_core = getenv("OPENBLAS_CORETYPE");
  int user_set = user_core && *user_core;

  bdl_blas_info_t info;
  memset(&info, 0, sizeof info);
  info.struct_size = 4;
  CHECK_STATUS(bdl_blas_info(&info), BDL_INVALID_ARGUMENT, "struct_size");
  CHECK_STATUS(bdl_blas_info(NULL), BDL_INVALID_ARGUMENT, "out_info is NULL");

  info.struct_size = sizeof info;
  CHECK_STATUS(bdl_blas_info(&info), BDL_OK, "");
  printf("OpenBLAS core %s (source %d), %d threads, %s\n", info.core, info.core_source, info.num_threads, info.openblas_library);
  CHECK(info.num_threads >= 1, "threads %d", info.num_threads);
  CHECK(strlen(info.openblas_library) > 0 && strlen(info.lapacke_library) > 0, "library paths");
  CHECK(strstr(info.config, "OpenBLAS") != NULL, "config %s", info.config);

  __builtin_cpu_init();
  int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  static const char *const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
  static const char *const avx2_cores[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", NULL};
  if (user_set) {
    CHECK(info.core_source == BDL_BLAS_CORE_FROM_USER, "source %d", info.core_source);
    CHECK(strcasecmp(info.core, user_core) == 0, "user asked for %s, got %s", user_core, info.core);
  } else if (avx512) {
    CHECK(one_of(info.core, avx512_cores), "AVX-512 CPU runs a pre-AVX-512 core: %s", info.core);
  } else if (avx2) {
    CHECK(one_of(info.core, avx2_cores), "AVX2 CPU runs a pre-AVX2 core: %s", info.core);
    CHECK(info.core_source == BDL_BLAS_CORE_FROM_BDLCORE, "source %d", info.core_source);
  }
  /* bdlcore's own choice does not leak into the environment of the process or its children. */
  if (!user_set) CHECK(getenv("OPENBLAS_CORETYPE") == NULL, "OPENBLAS_CORETYPE left set");

  /* A smaller (older) struct gets only its prefix written. */
  unsigned char small[sizeof(bdl_blas_info_t)];
  memset(small, 0xAB, sizeof small);
  size_t prefix = offsetof(bdl_blas_info_t, requested_core);
  ((bdl_blas_info_t *)small)->struct_size = (uint32_t)prefix;
  CHECK_STATUS(bdl_blas_info((bdl_blas_info_t *)small), BDL_OK, "");
  CHECK(small[prefix] == 0xAB && small[sizeof small - 1] == 0xAB, "wrote past struct_size");
  return check_summary("test_blas");
}
