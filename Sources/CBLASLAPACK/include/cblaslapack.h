/*
 * Lazy access to OpenBLAS (CBLAS) and LAPACKE for bdlcore's Swift core.
 *
 * Why a loader and not a link-time dependency: OpenBLAS picks its compute kernel once, when it is
 * initialised, from the OPENBLAS_CORETYPE environment variable or its own CPU detection. Linked at
 * build time it initialises before any bdlcore code runs, and some builds (Debian's 0.3.21 among
 * them) misdetect recent CPUs and run five times slower. Loading it on first use lets bdlcore choose
 * the core from the CPU's features first, for every consumer (C, Python, Swift, the CLI).
 *
 * The prototypes below are the standard LP64 CBLAS/LAPACKE ones (32-bit integers, the enum values
 * fixed by the CBLAS and LAPACKE standards); the loader refuses an ILP64 OpenBLAS. A C test compiles
 * these function-pointer types against the system <cblas.h> and <lapacke.h> to prove they match.
 *
 * All symbols here are hidden: they are internal to libbdlcore.so and the Swift targets.
 */
#ifndef CBLASLAPACK_H
#define CBLASLAPACK_H

#include <stddef.h>
#include <stdint.h>

#define CBL_HIDDEN __attribute__((visibility("hidden")))

/* CBLAS enumerations (values fixed by the CBLAS standard). */
enum { CBL_ROW_MAJOR = 101, CBL_COL_MAJOR = 102 };
enum { CBL_NO_TRANS = 111, CBL_TRANS = 112 };
enum { CBL_UPPER = 121, CBL_LOWER = 122 };
enum { CBL_LEFT = 141, CBL_RIGHT = 142 };
enum { CBL_NON_UNIT = 131, CBL_UNIT = 132 };

typedef void (*cbl_dgemm_fn)(int order, int transa, int transb, int m, int n, int k, double alpha,
                             const double *a, int lda, const double *b, int ldb, double beta,
                             double *c, int ldc);
typedef void (*cbl_dsyrk_fn)(int order, int uplo, int trans, int n, int k, double alpha,
                             const double *a, int lda, double beta, double *c, int ldc);
typedef void (*cbl_dgemv_fn)(int order, int trans, int m, int n, double alpha, const double *a,
                             int lda, const double *x, int incx, double beta, double *y, int incy);
typedef void (*cbl_dtrsm_fn)(int order, int side, int uplo, int transa, int diag, int m, int n,
                             double alpha, const double *a, int lda, double *b, int ldb);
typedef double (*cbl_ddot_fn)(int n, const double *x, int incx, const double *y, int incy);
typedef void (*cbl_daxpy_fn)(int n, double alpha, const double *x, int incx, double *y, int incy);
typedef void (*cbl_dscal_fn)(int n, double alpha, double *x, int incx);

typedef int (*cbl_dsytrd_fn)(int layout, char uplo, int n, double *a, int lda, double *d, double *e,
                             double *tau);
typedef int (*cbl_dsterf_fn)(int n, double *d, double *e);
typedef int (*cbl_dstedc_fn)(int layout, char compz, int n, double *d, double *e, double *z, int ldz);
typedef int (*cbl_dormtr_fn)(int layout, char side, char uplo, char trans, int m, int n,
                             const double *a, int lda, const double *tau, double *c, int ldc);
typedef int (*cbl_dpotrf_fn)(int layout, char uplo, int n, double *a, int lda);
typedef int (*cbl_dpotrs_fn)(int layout, char uplo, int n, int nrhs, const double *a, int lda,
                             double *b, int ldb);
typedef int (*cbl_dpotri_fn)(int layout, char uplo, int n, double *a, int lda);
typedef int (*cbl_dgesdd_fn)(int layout, char jobz, int m, int n, double *a, int lda, double *s,
                             double *u, int ldu, double *vt, int ldvt);

/* Where the core in use came from; the same values as BDL_BLAS_CORE_* in bdlcore.h. */
enum {
  CBL_CORE_FROM_OPENBLAS = 0,
  CBL_CORE_FROM_USER = 1,
  CBL_CORE_FROM_BDLCORE = 2,
  CBL_CORE_PRELOADED = 3
};

typedef struct cbl_api {
  cbl_dgemm_fn dgemm;
  cbl_dsyrk_fn dsyrk;
  cbl_dgemv_fn dgemv;
  cbl_dtrsm_fn dtrsm;
  cbl_ddot_fn ddot;
  cbl_daxpy_fn daxpy;
  cbl_dscal_fn dscal;
  cbl_dsytrd_fn dsytrd;
  cbl_dsterf_fn dsterf;
  cbl_dstedc_fn dstedc;
  cbl_dormtr_fn dormtr;
  cbl_dpotrf_fn dpotrf;
  cbl_dpotrs_fn dpotrs;
  cbl_dpotri_fn dpotri;
  cbl_dgesdd_fn dgesdd;
  int (*get_num_threads)(void);
  void (*set_num_threads)(int);
  int core_source;
  char core[64];
  char requested_core[64];
  char openblas_library[512];
  char lapacke_library[512];
  char config[256];
} cbl_api;

/*
 * Loads the libraries on the first call (thread-safe, once per process) and returns the table,
 * or NULL when loading failed; then cbl_load_error() says why and which files were tried.
 */
CBL_HIDDEN const cbl_api *cbl_load(void);
CBL_HIDDEN const char *cbl_load_error(void);

/* The OpenBLAS core bdlcore asks for when the user has not: SkylakeX on CPUs with AVX-512
 * (F, BW, DQ, VL), Zen on AMD and Haswell on other CPUs with AVX2 and FMA, NULL otherwise
 * (OpenBLAS's own detection is then as good as ours). */
CBL_HIDDEN const char *cbl_preferred_core(void);

/* CPU features as the compiler's runtime detection reports them (1 or 0). */
CBL_HIDDEN int cbl_cpu_has_avx512(void);
CBL_HIDDEN int cbl_cpu_has_avx2(void);

#endif /* CBLASLAPACK_H */
