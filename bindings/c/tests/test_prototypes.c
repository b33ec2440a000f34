/* The loader's hand-written CBLAS/LAPACKE function-pointer types and enum values must match the
 * system headers exactly; this file fails to compile if they do not. */
#include <cblas.h>
#include <lapacke.h>

#include "../../../Sources/CBLASLAPACK/include/cblaslapack.h"
#include "check.h"


/* CBLAS takes enum parameters where the loader uses int: equal in size and value on every ABI
 * bdlcore supports, which the value checks below pin down. */
_Static_assert((int)CblasRowMajor == (int)CBL_ROW_MAJOR && (int)CblasColMajor == (int)CBL_COL_MAJOR, "order");
_Static_assert((int)CblasNoTrans == (int)CBL_NO_TRANS && (int)CblasTrans == (int)CBL_TRANS, "transpose");
_Static_assert((int)CblasUpper == (int)CBL_UPPER && (int)CblasLower == (int)CBL_LOWER, "uplo");
_Static_assert((int)CblasLeft == (int)CBL_LEFT && (int)CblasRight == (int)CBL_RIGHT, "side");
_Static_assert((int)CblasNonUnit == (int)CBL_NON_UNIT && (int)CblasUnit == (int)CBL_UNIT, "diag");
_Static_assert(LAPACK_ROW_MAJOR == CBL_ROW_MAJOR && LAPACK_COL_MAJOR == CBL_COL_MAJOR, "layout");
_Static_assert(sizeof(lapack_int) == sizeof(int), "LP64 LAPACKE");
_Static_assert(sizeof(blasint) == sizeof(int), "LP64 OpenBLAS");
_Static_assert(sizeof(enum CBLAS_ORDER) == sizeof(int), "enum size");

/* LAPACKE prototypes use lapack_int == int, so their types must be identical. */
_Static_assert(__builtin_types_compatible_p(__typeof__(&LAPACKE_dsytrd), cbl_dsytrd_fn), "dsytrd");
_Static_assert(__builtin_types_compatible_p(__typeof__(&LAPACKE_dsterf), cbl_dsterf_fn), "dsterf");
_Static_assert(__builtin_types_compatible_p(__typeof__(&LAPACKE_dstedc), cbl_dstedc_fn), "dstedc");
_Static_assert(__builtin_types_compatible_p(__typeof__(&LAPACKE_dormtr), cbl_dormtr_fn), "dormtr");
_Static_assert(__builtin_types_compatible_p(__typeof__(&LAPACKE_dpotrf), cbl_dpotrf_fn), "dpotrf");
_Static_assert(__builtin_types_compatible_p(__typeof__(&LAPACKE_dpotrs), cbl_dpotrs_fn), "dpotrs");
_Static_assert(__builtin_types_compatible_p(__typeof__(&LAPACKE_dpotri), cbl_dpotri_fn), "dpotri");
_Static_assert(__builtin_types_compatible_p(__typeof__(&LAPACKE_dgesdd), cbl_dgesdd_fn), "dgesdd");
/* OpenBLAS's thread-count functions, as the loader's table holds them. */
_Static_assert(__builtin_types_compatible_p(__typeof__(&openblas_get_num_threads), __typeof__(((cbl_api *)0)->get_num_threads)), "openblas_get_num_threads");
_Static_assert(__builtin_types_compatible_p(__typeof__(&openblas_set_num_threads), __typeof__(((cbl_api *)0)->set_num_threads)), "openblas_set_num_threads");
/* Level-1 CBLAS has no enums: identical types. */
_Static_assert(__builtin_types_compatible_p(__typeof__(&cblas_ddot), cbl_ddot_fn), "ddot");
_Static_assert(__builtin_types_compatible_p(__typeof__(&cblas_daxpy), cbl_daxpy_fn), "daxpy");
_Static_assert(__builtin_types_compatible_p(__typeof__(&cblas_dscal), cbl_dscal_fn), "dscal");

/* Level-2/3 CBLAS: the same parameter list with each enum replaced by int. */
typedef void (*sys_dgemm)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint, blasint, blasint, double, const double *, blasint, const double *, blasint, double, double *, blasint);
typedef void (*sys_dsyrk)(enum CBLAS_ORDER, enum CBLAS_UPLO, enum CBLAS_TRANSPOSE, blasint, blasint, double, const double *, blasint, double, double *, blasint);
typedef void (*sys_dgemv)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, blasint, blasint, double, const double *, blasint, const double *, blasint, double, double *, blasint);
typedef void (*sys_dtrsm)(enum CBLAS_ORDER, enum CBLAS_SIDE, enum CBLAS_UPLO, enum CBLAS_TRANSPOSE, enum CBLAS_DIAG, blasint, blasint, double, const double *, blasint, double *, blasint);
_Static_assert(__builtin_types_compatible_p(__typeof__(&cblas_dgemm), sys_dgemm), "dgemm");
_Static_assert(__builtin_types_compatible_p(__typeof__(&cblas_dsyrk), sys_dsyrk), "dsyrk");
_Static_assert(__builtin_types_compatible_p(__typeof__(&cblas_dgemv), sys_dgemv), "dgemv");
_Static_assert(__builtin_types_compatible_p(__typeof__(&cblas_dtrsm), sys_dtrsm), "dtrsm");

int main(void) {
  CHECK(1, "the prototypes above compiled");
  return check_summary("test_prototypes");
}
