/*
 * bdlcore.h — the C API of bdlcore, Bayesian-deep-learning numerics.
 *
 * This header is the specification. The library implements it with Swift functions that the
 * compiler checks against these declarations, so a declaration here and its implementation
 * cannot drift apart.
 *
 * Conventions (they hold for every function below)
 * ------------------------------------------------
 * - Every fallible function returns a bdl_status, BDL_OK = 0 on success. Results go to the trailing
 *   `out` pointers, and only when the call returns BDL_OK: on failure no output is touched.
 * - On failure bdl_last_error_message() describes what went wrong, naming the argument and value.
 * - Matrices are double precision, row-major, C-contiguous, with explicit dimensions.
 *   Sizes are int64_t; a negative size, a size whose products overflow, or a NULL pointer with a
 *   non-zero size is BDL_INVALID_ARGUMENT. NaN or Inf in an input array is BDL_NON_FINITE_INPUT.
 * - Outputs go into caller-allocated buffers. When an output's length is fixed by the dimension
 *   arguments of the same call, the documentation states it; when it depends on a handle, the call
 *   takes the buffer's capacity (in elements) and fails with BDL_SHAPE_MISMATCH if it is too small.
 * - Handles are opaque: bdl_X_create(..., bdl_X **out) makes one, bdl_X_free(bdl_X *) releases it
 *   and accepts NULL. A pointer that is not a live handle of the right kind is rejected with
 *   BDL_INVALID_ARGUMENT (best effort: a freed address reused by a new handle cannot be told apart).
 *
 * Threading
 * ---------
 * Functions are reentrant. One handle must not be used by two threads at the same time; distinct
 * handles may be used concurrently. The last error message is thread-local.
 * Dense linear algebra runs in OpenBLAS, which has its own thread pool: set OPENBLAS_NUM_THREADS
 * (before the first bdlcore call) to bound it, e.g. to 1 when your program already runs one
 * bdlcore call per core. With T > 1 OpenBLAS threads, the curvature passes over data (K-FAC,
 * EK-FAC, diagonal GGN fits, from the engine) and the training step's gradient split each batch
 * that is big enough (≥ 2^23 forward multiply-adds) into T shards processed by T threads at
 * once, each calling OpenBLAS single-threaded: for the duration, bdlcore sets
 * OpenBLAS's process-wide thread count to 1 (so other threads' calls into the same OpenBLAS are
 * single-threaded meanwhile) and restores the previous count afterwards. Results depend on T
 * only through rounding; for a given T they are reproducible. Outside those passes, the
 * memory-bound loops of one big batch (pooling, activations, im2col and the convolutions' layout
 * changes, writing ≥ 2^20 doubles) run in T pieces on T threads in the same way; their results
 * do not depend on T.
 *
 * BLAS kernel selection
 * ---------------------
 * bdlcore loads OpenBLAS and LAPACKE lazily, on the first call that needs them (dlopen of
 * libopenblas.so.0, then liblapacke.so.3). If OPENBLAS_CORETYPE is not set, it first chooses the
 * core from the CPU's features (AVX-512 → SkylakeX; AVX2+FMA → Zen on AMD, Haswell otherwise;
 * older CPUs are left to OpenBLAS's own detection), because some OpenBLAS
 * builds do not recognise recent CPUs and fall back to kernels five times slower; it removes the
 * variable again once OpenBLAS has read it. A value you set yourself always wins. If OpenBLAS was
 * already loaded into the process by someone else, its kernel was chosen then; bdl_blas_info()
 * reports what is in use. BDLCORE_OPENBLAS_LIBRARY and BDLCORE_LAPACKE_LIBRARY name other files.
 */
#ifndef BDLCORE_H
#define BDLCORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define BDL_API __attribute__((visibility("default")))
#else
#define BDL_API
#endif

/* ---------------------------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------------------------- */

#define BDL_VERSION_MAJOR 0
#define BDL_VERSION_MINOR 1
#define BDL_VERSION_PATCH 0

/** The library's version as "MAJOR.MINOR.PATCH"; static storage, never NULL. */
BDL_API const char *bdl_version_string(void);

/** The library's version as MAJOR·10000 + MINOR·100 + PATCH, to compare with the macros above. */
BDL_API int32_t bdl_version_number(void);

/* ---------------------------------------------------------------------------------------------
 * Status and errors
 * ------------------------------------------------------------------------------------------- */

/** Result of every fallible call. Values are pinned; new ones are only ever appended. */
typedef int32_t bdl_status;

enum {
  BDL_OK = 0,                     /**< success */
  BDL_INVALID_ARGUMENT = 1,       /**< caller bug: NULL pointer, negative or overflowing size, bad enum or option */
  BDL_SHAPE_MISMATCH = 2,         /**< dimensions disagree with each other or with a handle, or a buffer is too small */
  BDL_NON_FINITE_INPUT = 3,       /**< NaN or ±Inf in an input */
  BDL_NOT_POSITIVE_DEFINITE = 4,  /**< a matrix that must be positive (semi-)definite is not */
  BDL_NOT_CONVERGED = 5,          /**< an iterative method stopped before its tolerance */
  BDL_OUT_OF_MEMORY = 6,          /**< an allocation failed or would exceed addressable memory */
  BDL_IO_ERROR = 7,               /**< a file could not be opened, read or written */
  BDL_CORRUPT_DATA = 8,           /**< a file or buffer is malformed, truncated or fails its checksum */
  BDL_WRONG_STATE = 9,            /**< the object is not in a state that allows the call (e.g. not fitted) */
  BDL_UNSUPPORTED = 10,           /**< valid request this build or platform cannot serve (e.g. OpenBLAS missing) */
  BDL_INTERNAL = 11               /**< a bug in bdlcore; please report it with the message */
};

/** Short static description of a status ("invalid argument"); unknown values give "unknown status". */
BDL_API const char *bdl_status_string(bdl_status status);

/**
 * Message describing the most recent failure on the calling thread, naming the argument and value
 * ("B: entry (0, 1) = 2 differs from (1, 0) = 3; the factor must be symmetric"). Empty if no call
 * on this thread has failed. The text is owned by the library and valid until the next bdlcore call
 * on the same thread.
 */
BDL_API const char *bdl_last_error_message(void);

/** Number of handles currently alive in the process (created and not yet freed). For leak tests. */
BDL_API int64_t bdl_debug_live_handles(void);

/* ---------------------------------------------------------------------------------------------
 * BLAS backend
 * ------------------------------------------------------------------------------------------- */

/** Where the OpenBLAS core in use came from. */
enum {
  BDL_BLAS_CORE_FROM_OPENBLAS = 0, /**< OpenBLAS detected the CPU itself (no CPU feature bdlcore keys on) */
  BDL_BLAS_CORE_FROM_USER = 1,     /**< OPENBLAS_CORETYPE was set before bdlcore loaded OpenBLAS */
  BDL_BLAS_CORE_FROM_BDLCORE = 2,  /**< bdlcore chose it from the CPU features */
  BDL_BLAS_CORE_PRELOADED = 3      /**< OpenBLAS was already in the process; its core was chosen then */
};

/** Description of the BLAS/LAPACK libraries bdlcore uses. Strings are NUL-terminated. */
typedef struct bdl_blas_info_t {
  uint32_t struct_size;        /**< set to sizeof(bdl_blas_info_t) by the caller before the call */
  int32_t num_threads;         /**< OpenBLAS threads (openblas_get_num_threads) */
  int32_t core_source;         /**< one of BDL_BLAS_CORE_* */
  char core[64];               /**< openblas_get_corename(), e.g. "Haswell", "SkylakeX" */
  char requested_core[64];     /**< OPENBLAS_CORETYPE value in effect at load ("" if none) */
  char openblas_library[512];  /**< file of the loaded OpenBLAS */
  char lapacke_library[512];   /**< file of the loaded LAPACKE */
  char config[256];            /**< openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ..." */
} bdl_blas_info_t;

/**
 * Loads OpenBLAS and LAPACKE if not yet loaded and describes them.
 *
 * @param[in,out] out_info  caller sets out_info->struct_size = sizeof(bdl_blas_info_t); the library
 *                          fills at most struct_size bytes (older callers with a smaller struct work)
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL, or struct_size smaller than the fields up to `core`);
 *         BDL_UNSUPPORTED (OpenBLAS or LAPACKE could not be loaded; the message lists the files tried).
 */
BDL_API bdl_status bdl_blas_info(bdl_blas_info_t *out_info);

/* ---------------------------------------------------------------------------------------------
 * Kronecker-factored matrices: M = scale · B ⊗ A + delta · I
 *
 * B (nb × nb, the output-side factor) and A (na × na, the input-side factor) are symmetric
 * positive semi-definite. Vectors of length nb·na are read as nb × na row-major matrices X, so that
 * (B ⊗ A) vec(X) = vec(B X Aᵀ) — the layout of a Linear layer's weight (out × in) in PyTorch.
 * With B = Q_B diag(β) Q_Bᵀ and A = Q_A diag(α) Q_Aᵀ, M = (Q_B ⊗ Q_A) diag(d) (Q_B ⊗ Q_A)ᵀ with
 * d_ij = scale·β_i·α_j + delta, so every function below works through the two eigendecompositions
 * and never forms the (nb·na)² matrix: logdet, powers M^e and diag(M^e) are exact for any delta.
 *
 * Input checks shared by all of them: B and A must be symmetric (|B_ij − B_ji| ≤ 1e-10·max|B|;
 * they are symmetrised before use) and positive semi-definite (eigenvalues below
 * −n·100·ε·max|eigenvalue| are an error; those within ±n·100·ε·max|eigenvalue| of zero are
 * rounding and are set to exactly 0, so a rank-deficient factor is singular, not nearly so),
 * scale ≥ 0 and finite, delta finite. A non-symmetric or indefinite factor is
 * BDL_NOT_POSITIVE_DEFINITE with the factor named. Operations that need M^e with e ≤ 0 (solve,
 * logdet, negative powers) need every d_ij > 0; otherwise BDL_NOT_POSITIVE_DEFINITE (for example
 * a rank-deficient factor with delta ≤ 0).
 * ------------------------------------------------------------------------------------------- */

/**
 * log det(scale · B ⊗ A + delta · I) = Σ_ij log(scale·β_i·α_j + delta).
 *
 * @param B, nb        output-side factor (nb × nb, row-major), nb ≥ 1
 * @param A, na        input-side factor (na × na, row-major), na ≥ 1
 * @param scale        h ≥ 0 (e.g. 1/σ² for Gaussian regression)
 * @param delta        δ (e.g. the prior precision); every scale·β_i·α_j + δ must be > 0
 * @param[out] out_logdet  written only on BDL_OK
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL pointer, nb or na < 1, nb·na overflows, scale < 0,
 *         non-finite scale or delta); BDL_NON_FINITE_INPUT (NaN/Inf in B or A);
 *         BDL_NOT_POSITIVE_DEFINITE (factor not symmetric PSD, or some d_ij ≤ 0).
 */
BDL_API bdl_status bdl_kron_logdet(const double *B, int64_t nb, const double *A, int64_t na,
                                   double scale, double delta, double *out_logdet);

/**
 * Solves (scale · B ⊗ A + delta · I) vec(Y_t) = vec(X_t) for k right-hand sides:
 * Y_t = Q_B [(Q_Bᵀ X_t Q_A) ⊘ d] Q_Aᵀ.
 *
 * @param X      k right-hand sides, each an nb × na row-major matrix, stored one after another
 *               (k·nb·na doubles)
 * @param k      number of right-hand sides, k ≥ 1
 * @param[out] out_Y  k·nb·na doubles, same layout as X; may be the same buffer as X
 * @return as bdl_kron_logdet, plus BDL_NON_FINITE_INPUT for NaN/Inf in X and BDL_INVALID_ARGUMENT
 *         when k·nb·na overflows.
 */
BDL_API bdl_status bdl_kron_solve(const double *B, int64_t nb, const double *A, int64_t na,
                                  double scale, double delta, const double *X, int64_t k,
                                  double *out_Y);

/**
 * Diagonal of (scale · B ⊗ A + delta · I)^exponent, as an nb × na row-major matrix:
 * diag(M^e)_(i,j) = Σ_pq Q_B[i,p]² Q_A[j,q]² d_pq^e, i.e. ((Q_B∘Q_B) D^e (Q_A∘Q_A)ᵀ)_ij.
 * exponent = 1 gives scale·B_ii·A_jj + delta; exponent = −1 gives the marginal variances of a
 * Kronecker-factored Gaussian with precision M.
 *
 * @param exponent  any finite e; e ≤ 0 needs every d_ij > 0, e > 0 needs every d_ij ≥ 0
 * @param[out] out_diag  nb·na doubles
 * @return as bdl_kron_logdet.
 */
BDL_API bdl_status bdl_kron_diagonal(const double *B, int64_t nb, const double *A, int64_t na,
                                     double scale, double delta, double exponent,
                                     double *out_diag);

/**
 * A Kronecker pair B ⊗ A eigendecomposed once, for repeated use with different scale, delta and
 * exponent (the Laplace posterior of one layer, say). Holds copies of the eigenvectors:
 * 8·(nb² + na² + nb + na) bytes.
 */
typedef struct bdl_kron_factor bdl_kron_factor;

/**
 * Eigendecomposes B and A (LAPACK: eigenvalues now, eigenvectors on first use) and returns a new
 * handle.
 *
 * @param B, nb, A, na  as for bdl_kron_logdet
 * @param[out] out_factor  receives the handle; release it with bdl_kron_factor_free
 * @return BDL_OK; BDL_INVALID_ARGUMENT; BDL_NON_FINITE_INPUT; BDL_NOT_POSITIVE_DEFINITE (a factor
 *         is not symmetric PSD); BDL_NOT_CONVERGED (the eigensolver failed to converge);
 *         BDL_UNSUPPORTED (OpenBLAS/LAPACKE missing).
 */
BDL_API bdl_status bdl_kron_factor_create(const double *B, int64_t nb, const double *A, int64_t na,
                                          bdl_kron_factor **out_factor);

/** Releases a factor. NULL is accepted and ignored. */
BDL_API void bdl_kron_factor_free(bdl_kron_factor *factor);

/** The factor orders nb and na. */
BDL_API bdl_status bdl_kron_factor_shape(const bdl_kron_factor *factor, int64_t *out_nb,
                                         int64_t *out_na);

/**
 * The eigenvalues β of B (ascending, nb of them) and α of A (ascending, na of them), after
 * rounding-level values (|λ| ≤ n·100·ε·max|λ|) were set to 0.
 *
 * @param out_beta, beta_capacity    buffer for β; capacity ≥ nb or BDL_SHAPE_MISMATCH
 * @param out_alpha, alpha_capacity  buffer for α; capacity ≥ na or BDL_SHAPE_MISMATCH
 */
BDL_API bdl_status bdl_kron_factor_eigenvalues(const bdl_kron_factor *factor, double *out_beta,
                                               int64_t beta_capacity, double *out_alpha,
                                               int64_t alpha_capacity);

/** log det(scale · B ⊗ A + delta · I); statuses as bdl_kron_logdet. */
BDL_API bdl_status bdl_kron_factor_logdet(const bdl_kron_factor *factor, double scale, double delta,
                                          double *out_logdet);

/**
 * Y_t = (scale · B ⊗ A + delta · I)^exponent X_t for k matrices X_t (nb × na each):
 * Y_t = Q_B [(Q_Bᵀ X_t Q_A) ∘ d^e] Q_Aᵀ. exponent −1 solves, −½ whitens (a sample of N(0, M⁻¹)
 * is M^(−½) z), ½ and 1 multiply.
 *
 * @param X, k            k·nb·na doubles, k ≥ 1
 * @param[out] out_Y      may be the same buffer as X
 * @param out_capacity    length of out_Y in doubles; must be ≥ k·nb·na
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL, k < 1, non-finite or negative scale, non-finite
 *         delta or exponent); BDL_NON_FINITE_INPUT (X); BDL_SHAPE_MISMATCH (capacity);
 *         BDL_NOT_POSITIVE_DEFINITE (some d_ij ≤ 0 with exponent ≤ 0, or < 0 with exponent > 0).
 */
BDL_API bdl_status bdl_kron_factor_apply_power(const bdl_kron_factor *factor, double scale,
                                               double delta, double exponent, const double *X,
                                               int64_t k, double *out_Y, int64_t out_capacity);

/**
 * diag((scale · B ⊗ A + delta · I)^exponent) into out_diag (nb × na row-major; capacity ≥ nb·na).
 * Statuses as bdl_kron_factor_apply_power.
 */
BDL_API bdl_status bdl_kron_factor_diagonal(const bdl_kron_factor *factor, double scale,
                                            double delta, double exponent, double *out_diag,
                                            int64_t out_capacity);

/* ---------------------------------------------------------------------------------------------
 * Networks: sequential models in PyTorch's parameter layout
 *
 * A bdl_model is an nn.Sequential-like network with one parameter vector θ: the concatenation,
 * layer by layer, of each layer's weight then bias, flattened row-major in PyTorch's shapes
 * (Linear weight (out, in); Conv2d weight (out, in, k, k)) — parameters_to_vector(model.parameters())
 * of the equivalent torch.nn.Sequential, so weights move between the two by copying one vector.
 * Batches put the example first and are row-major: (N, in), sequences (N, T, in), images NCHW
 * (N, C, H, W). Outputs are (N, C).
 *
 * Likelihoods (DESIGN conventions): BDL_LIKELIHOOD_CLASSIFICATION is categorical with
 * p = softmax(f), targets are class labels stored as exact integers in doubles (N of them);
 * BDL_LIKELIHOOD_REGRESSION is N(y; f, σ²I), targets are (N, C).
 * ------------------------------------------------------------------------------------------- */

/** Layer kinds of bdl_layer_spec. */
enum {
  BDL_LAYER_LINEAR = 1,              /**< y = W x + b on the last axis of (N, in) or (N, T, in) */
  BDL_LAYER_CONV2D = 2,              /**< 2-D convolution, square kernel, zero padding, NCHW */
  BDL_LAYER_RELU = 3,
  BDL_LAYER_TANH = 4,
  BDL_LAYER_SIGMOID = 5,
  BDL_LAYER_GELU = 6,                /**< exact x·Φ(x) (PyTorch's approximate='none') */
  BDL_LAYER_IDENTITY = 7,
  BDL_LAYER_FLATTEN = 8,             /**< (N, d1, d2, …) → (N, d1·d2·…) */
  BDL_LAYER_AVG_POOL2D = 9,          /**< mean over non-overlapping k × k windows (stride k) */
  BDL_LAYER_GLOBAL_AVG_POOL2D = 10,  /**< (N, C, H, W) → (N, C) */
  BDL_LAYER_MEAN_OVER_SEQUENCE = 11, /**< (N, T, D) → (N, D) */
  BDL_LAYER_CONV_FC_MIXTURE = 12     /**< ½(Conv2d(x) + reshape(W·vec(x) + b)): a convolution and a
                                          fully-connected path averaged (layer-wise equivariance
                                          selection); conv fields as for Conv2d. Occupies TWO
                                          engine layers (conv, then FC), so per-layer indices
                                          after it shift by one; parameters: conv W, b, FC W
                                          (C_out·H_out·W_out × C_in·H·W), b */
};

/**
 * One layer. Fields a kind does not use are ignored.
 * Linear: in_features, out_features, bias. Conv2d and the conv/FC mixture: in_features =
 * in_channels, out_features = out_channels, kernel_size, stride (≥ 1), padding (≥ 0), bias.
 * AvgPool2d: kernel_size.
 */
typedef struct bdl_layer_spec {
  int32_t kind;          /**< BDL_LAYER_* */
  int32_t bias;          /**< nonzero: the layer has a bias (Linear, Conv2d) */
  int64_t in_features;
  int64_t out_features;
  int64_t kernel_size;
  int64_t stride;
  int64_t padding;
} bdl_layer_spec;

/** Likelihoods. */
enum {
  BDL_LIKELIHOOD_CLASSIFICATION = 1, /**< categorical, softmax of the outputs */
  BDL_LIKELIHOOD_REGRESSION = 2      /**< Gaussian with noise σ */
};

typedef struct bdl_model bdl_model;

/**
 * Builds a network for examples of shape input_shape (rank 1: (in); rank 2: (T, in); rank 3:
 * (C, H, W)) and initialises θ as PyTorch's defaults would (W, b ~ U(±1/√fan_in)) from `seed`.
 *
 * @param layers, n_layers        the layers in order, n_layers ≥ 1
 * @param input_shape, input_rank one example's shape, 1 ≤ input_rank ≤ 3, entries ≥ 1
 * @param seed                    seeds the initialisation
 * @param[out] out_model          the new handle; free it with bdl_model_free
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL, bad sizes, unknown kind, bad layer fields);
 *         BDL_SHAPE_MISMATCH (a layer cannot take what the previous one produces, e.g. Conv2d after
 *         Flatten, or the output is not a vector; the message names the layer and the shapes).
 */
BDL_API bdl_status bdl_model_create(const bdl_layer_spec *layers, int64_t n_layers,
                                    const int64_t *input_shape, int64_t input_rank, uint64_t seed,
                                    bdl_model **out_model);

/** Releases a model. NULL is accepted and ignored. */
BDL_API void bdl_model_free(bdl_model *model);

/**
 * Sizes of a model: P parameters, C outputs per example, and the per-example input size
 * (product of the input shape). Any out pointer may be NULL.
 */
BDL_API bdl_status bdl_model_sizes(const bdl_model *model, int64_t *out_num_parameters,
                                   int64_t *out_num_outputs, int64_t *out_input_size);

/** Copies θ (P doubles) into out_parameters; capacity < P is BDL_SHAPE_MISMATCH. */
BDL_API bdl_status bdl_model_get_parameters(const bdl_model *model, double *out_parameters,
                                            int64_t capacity);

/**
 * Replaces θ by `parameters` (exactly P doubles). On any failure θ is unchanged.
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL); BDL_SHAPE_MISMATCH (count ≠ P);
 *         BDL_NON_FINITE_INPUT (NaN/Inf).
 */
BDL_API bdl_status bdl_model_set_parameters(bdl_model *model, const double *parameters,
                                            int64_t count);

/**
 * Outputs f(X) for a batch: X has n examples of the model's input shape (n·input_size doubles),
 * out_outputs receives n·C doubles (capacity ≥ n·C).
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL, n < 1, overflow); BDL_NON_FINITE_INPUT (X);
 *         BDL_SHAPE_MISMATCH (capacity).
 */
BDL_API bdl_status bdl_model_forward(const bdl_model *model, const double *X, int64_t n,
                                     double *out_outputs, int64_t capacity);

/**
 * The Jacobian J(x_i) = ∂f(x_i)/∂θ for n inputs, as n·C rows of P (row i·C + c), computed by
 * backpropagating the C unit vectors (no finite differences). For a few inputs: n·C·P doubles.
 */
BDL_API bdl_status bdl_model_jacobian(const bdl_model *model, const double *X, int64_t n,
                                      double *out_jacobian, int64_t capacity);

/**
 * The summed negative log-likelihood and its gradient with respect to θ:
 * classification Σ_i [logsumexp(f_i) − f_{i,y_i}]; regression Σ_i ½‖y_i − f_i‖²/σ² +
 * n·C·log(σ√(2π)).
 *
 * @param y          n labels (classification: integers 0..C−1 stored as doubles) or n·C targets
 * @param likelihood BDL_LIKELIHOOD_*
 * @param sigma      σ > 0 for regression (ignored for classification)
 * @param[out] out_loss      the summed NLL (may be NULL)
 * @param[out] out_gradient  P doubles (may be NULL); capacity ≥ P when given
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL X or y, unknown likelihood, label outside [0, C) or
 *         not an integer, σ ≤ 0); BDL_NON_FINITE_INPUT; BDL_SHAPE_MISMATCH (capacity).
 */
BDL_API bdl_status bdl_model_loss_gradient(const bdl_model *model, const double *X, int64_t n,
                                           const double *y, int32_t likelihood, double sigma,
                                           double *out_loss, double *out_gradient,
                                           int64_t capacity);

/**
 * Per-layer statistics of one backward pass: for every layer computing y_r = W a_r + b at R
 * positions per example (Linear: R = 1, or T on sequences; Conv2d: R = H_out·W_out with a_r the
 * im2col patch, entries ordered (c, i, j) like the flattened weight), the layer inputs
 * a (n, R, d_in) and the output-gradients g (n, K, R, d_out), g_{i,k,r} = ∂⟨f(x_i), V_{i,k}⟩/∂y_r.
 * These are what K-FAC, EK-FAC, per-example gradients and influence scores are built from.
 */
typedef struct bdl_layer_statistics bdl_layer_statistics;

/**
 * Backpropagates K vectors per example, V (n, K, C), through the network and keeps, for each
 * linear-map layer, its a and g. No Jacobian is formed. Read them in place with
 * bdl_layer_statistics_data (no copy: for K vectors through a CNN they run to gigabytes) or copy
 * them with bdl_layer_statistics_get.
 * @param[out] out_statistics  new handle; free with bdl_layer_statistics_free
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL, n < 1, K < 1, overflow); BDL_NON_FINITE_INPUT
 *         (X or V); BDL_OUT_OF_MEMORY.
 */
BDL_API bdl_status bdl_model_backward_vectors(const bdl_model *model, const double *X, int64_t n,
                                              const double *V, int64_t k,
                                              bdl_layer_statistics **out_statistics);

/**
 * Per-example gradients ∂⟨f(x_i), V_{i,k}⟩/∂θ for K vectors per example, as n·K rows of P
 * (row i·K + k), contracted layer by layer from a and g (weight Σ_r g_r a_rᵀ, bias Σ_r g_r)
 * without forming a Jacobian. With V the loss gradient at the labels (K = 1) these are the
 * per-example loss gradients of influence functions and the empirical Fisher.
 * n·K·P doubles, capacity ≥ n·K·P.
 * @return as bdl_model_backward_vectors, plus BDL_SHAPE_MISMATCH (capacity).
 */
BDL_API bdl_status bdl_model_per_example_gradients(const bdl_model *model, const double *X,
                                                   int64_t n, const double *V, int64_t k,
                                                   double *out_gradients, int64_t capacity);

/** Releases statistics. NULL is accepted and ignored. */
BDL_API void bdl_layer_statistics_free(bdl_layer_statistics *statistics);

/** The number of linear-map layers (Linear and Conv2d) the statistics hold. */
BDL_API bdl_status bdl_layer_statistics_count(const bdl_layer_statistics *statistics,
                                              int64_t *out_count);

/**
 * Shape of entry `index` (0 ≤ index < count): its position in the model's layer list, n, K, R,
 * d_in, d_out and whether the layer has a bias. Any out pointer may be NULL.
 */
BDL_API bdl_status bdl_layer_statistics_shape(const bdl_layer_statistics *statistics,
                                              int64_t index, int64_t *out_layer,
                                              int64_t *out_n, int64_t *out_k,
                                              int64_t *out_positions, int64_t *out_d_in,
                                              int64_t *out_d_out, int32_t *out_has_bias);

/**
 * Copies entry `index`'s a (n·R·d_in doubles) and g (n·K·R·d_out doubles). Either out pointer may
 * be NULL to skip it; a given buffer needs the capacity stated or BDL_SHAPE_MISMATCH.
 */
BDL_API bdl_status bdl_layer_statistics_get(const bdl_layer_statistics *statistics, int64_t index,
                                            double *out_a, int64_t a_capacity, double *out_g,
                                            int64_t g_capacity);

/**
 * Entry `index`'s a (n·R·d_in doubles) and g (n·K·R·d_out doubles) in place, row-major in the
 * shapes bdl_layer_statistics_shape gives: pointers into the statistics, valid until
 * bdl_layer_statistics_free and read-only (the handle never changes them). Either out pointer
 * may be NULL to skip it.
 */
BDL_API bdl_status bdl_layer_statistics_data(const bdl_layer_statistics *statistics, int64_t index,
                                             const double **out_a, const double **out_g);

/** Optimisers. */
enum { BDL_OPTIMIZER_ADAM = 1, BDL_OPTIMIZER_SGD = 2 };
/** Learning-rate schedules. */
enum { BDL_SCHEDULE_CONSTANT = 1, BDL_SCHEDULE_COSINE = 2 };

/**
 * Options of bdl_model_train. Fill with bdl_train_params_init, then change what you need.
 * The objective is the MAP objective Σ NLL + ½ θᵀ diag(δ) θ divided by N, so learning rates
 * mean what they mean with PyTorch's mean-reduced losses.
 */
typedef struct bdl_train_params {
  uint32_t struct_size;             /**< sizeof(bdl_train_params), set by the init function */
  int32_t likelihood;               /**< BDL_LIKELIHOOD_*; default classification */
  double sigma;                     /**< regression noise σ; default 1 */
  int32_t optimizer;                /**< BDL_OPTIMIZER_*; default Adam */
  int32_t schedule;                 /**< BDL_SCHEDULE_*; default constant */
  double learning_rate;             /**< default 1e-3 (PyTorch's Adam default) */
  double momentum;                  /**< SGD momentum in [0, 1); default 0.9 */
  double beta1, beta2, epsilon;     /**< Adam; defaults 0.9, 0.999, 1e-8 (PyTorch's) */
  int64_t epochs;                   /**< default 10 */
  int64_t batch_size;               /**< default 32 */
  const double *prior_precision;    /**< δ: 1 value, one per parameter tensor or one per
                                         parameter; NULL = 0 */
  int64_t prior_precision_count;
  uint64_t seed;                    /**< shuffling seed; runs are bit-for-bit reproducible for
                                         a given OpenBLAS thread count; default 0 */
  const double *mask;               /**< NULL, or one 0/1 value per parameter: 0 sets the parameter
                                         to 0 before the first step and keeps it exactly 0 (a pruning
                                         mask survives further training); default NULL */
  int64_t mask_count;
} bdl_train_params;

/** Fills `params` with the defaults above. */
BDL_API bdl_status bdl_train_params_init(bdl_train_params *params);

/** What bdl_model_train reports after each epoch. */
typedef struct bdl_train_progress {
  int64_t epoch;                    /**< 1-based epoch just finished */
  int64_t epochs;
  double objective;                 /**< mean minibatch objective over the epoch */
  double mean_negative_log_likelihood; /**< mean NLL per example over the epoch */
} bdl_train_progress;

/** Progress callback: return 0 to continue, nonzero to stop after this epoch. */
typedef int32_t (*bdl_progress_fn)(const bdl_train_progress *progress, void *user_data);

/**
 * Trains θ to the MAP estimate by minibatch Adam or SGD with seeded shuffling.
 *
 * @param X, n       training inputs (n examples of the input shape)
 * @param y          labels or targets as for bdl_model_loss_gradient
 * @param params     options (NULL: the defaults)
 * @param progress   called after every epoch (may be NULL); user_data is passed through
 * @param[out] out_last  the last epoch's report (may be NULL)
 * @return BDL_OK; BDL_INVALID_ARGUMENT (bad options, labels); BDL_NON_FINITE_INPUT;
 *         BDL_SHAPE_MISMATCH (prior precision count); BDL_NOT_CONVERGED (the objective or θ
 *         became NaN/Inf — θ is restored to its value before the call). On bad input θ is
 *         unchanged. After a stop requested by the callback, θ is the state after that epoch.
 */
BDL_API bdl_status bdl_model_train(bdl_model *model, const double *X, int64_t n, const double *y,
                                   const bdl_train_params *params, bdl_progress_fn progress,
                                   void *user_data, bdl_train_progress *out_last);

/* ---------------------------------------------------------------------------------------------
 * Curvature: K-FAC, EK-FAC, the dense GGN and its exact diagonal
 *
 * Curvature G is accumulated at σ = 1 and temperature 1 as a SUM over the data (DESIGN
 * conventions); every query takes the scale h (1/σ² for regression, 1/T) and a damping δ and
 * works on M = h·G + δ·I. K-FAC holds one block per weight, B ⊗ A (B: Σ g gᵀ, the output-gradient
 * factor; A: the mean of a aᵀ, the input factor), and one per bias, B ⊗ [1]; EK-FAC keeps K-FAC's
 * eigenbases and refits the eigenvalues to the per-example gradients. Damped inverses are exact
 * through the eigendecompositions, 1/(h·λ + δ) per eigenvalue, unless a K-FAC handle is switched
 * to a factored (π-)damping with bdl_curvature_set_kfac_damping.
 * Parameters not in a Linear/Conv2d layer do not exist in these networks, so every structure
 * covers all P parameters, in parameter-vector order.
 * ------------------------------------------------------------------------------------------- */

/** Curvature kinds. */
enum {
  BDL_CURVATURE_KFAC = 1,      /**< block-diagonal Kronecker factors */
  BDL_CURVATURE_EKFAC = 2,     /**< eigenvalue-corrected K-FAC (George et al. 2018) */
  BDL_CURVATURE_DIAG_GGN = 3,  /**< diag(G) = Σ_{n,k} (per-example gradient)², exact with BDL_FISHER_EXACT */
  BDL_CURVATURE_GGN = 4        /**< the dense P × P matrix (small models) */
};

/** Where the output vectors come from (DESIGN conventions). */
enum {
  BDL_FISHER_EXACT = 1,        /**< the C columns of the output-Hessian square root: the GGN */
  BDL_FISHER_MC = 2,           /**< mc_samples sampled labels per example, seeded, averaged */
  BDL_FISHER_EMPIRICAL = 3     /**< the loss gradient at the observed label */
};

/** K-FAC for layers applied at R positions (sequences, convolutions). */
enum {
  BDL_KFAC_EXPAND = 1,         /**< A = Σ_{n,r} a aᵀ/(N·R), B = Σ_{n,k,r} g gᵀ */
  BDL_KFAC_REDUCE = 2          /**< â = mean_r a, ĝ = Σ_r g; A = Σ_n â âᵀ/N, B = Σ_{n,k} ĝ ĝᵀ */
};

/** Options of bdl_curvature_fit; fill with bdl_curvature_params_init. */
typedef struct bdl_curvature_params {
  uint32_t struct_size;        /**< set by the init function */
  int32_t kind;                /**< BDL_CURVATURE_*; default K-FAC */
  int32_t fisher;              /**< BDL_FISHER_*; default exact */
  int32_t approximation;       /**< BDL_KFAC_*; default expand (K-FAC and EK-FAC only) */
  int32_t likelihood;          /**< BDL_LIKELIHOOD_*; default classification (regression at σ = 1) */
  int64_t mc_samples;          /**< labels per example for BDL_FISHER_MC; default 1 */
  uint64_t seed;               /**< seeds the Monte-Carlo labels; default 0 */
  int64_t batch_size;          /**< examples per forward/backward pass; default 256 */
} bdl_curvature_params;

/** Fills `params` with the defaults above. */
BDL_API bdl_status bdl_curvature_params_init(bdl_curvature_params *params);

typedef struct bdl_curvature bdl_curvature;

/**
 * Fits a curvature of `model` on (X, y): per batch a forward pass and a backward of the Fisher
 * source's output vectors, accumulated; K-FAC factors are then eigendecomposed once (EK-FAC makes a
 * second pass to refit the eigenvalues): their eigenvalues at once, their eigenvectors when a call
 * first needs them (log-determinants do not; solves, powers, diagonals and traces do), so the
 * first such call takes longer. A statistic that overflows during the fit is reported as a
 * non-finite factor (BDL_NON_FINITE_INPUT naming it).
 * @param y  labels or targets as for bdl_model_loss_gradient
 * @param params  options (NULL: the defaults)
 * @param[out] out_curvature  new handle; free with bdl_curvature_free
 * @return BDL_OK; BDL_INVALID_ARGUMENT (bad options, labels, sizes); BDL_NON_FINITE_INPUT;
 *         BDL_SHAPE_MISMATCH; BDL_OUT_OF_MEMORY (e.g. the dense GGN of a large model).
 */
BDL_API bdl_status bdl_curvature_fit(const bdl_model *model, const double *X, int64_t n,
                                     const double *y, const bdl_curvature_params *params,
                                     bdl_curvature **out_curvature);

/** Releases a curvature. NULL is accepted and ignored. */
BDL_API void bdl_curvature_free(bdl_curvature *curvature);

/** How K-FAC adds the damping δ (bdl_curvature_set_kfac_damping). */
enum {
  BDL_KFAC_DAMPING_EXACT = 1,     /**< scale·B⊗A + δ·I, exact through the eigenbasis (the default) */
  BDL_KFAC_DAMPING_FACTORED = 2,  /**< (√scale·B + √δ·I) ⊗ (√scale·A + √δ·I) (laplace-torch's damped Kron) */
  BDL_KFAC_DAMPING_PI = 3         /**< (√scale·B + (√δ/π)·I) ⊗ (√scale·A + π√δ·I), π = √((tr A/n_A)/(tr B/n_B))
                                       (Martens & Grosse 2015, §6.3) */
};

/**
 * Sets how every later query of a K-FAC curvature (log det, powers, diagonal, dense) adds the
 * damping: BDL_KFAC_DAMPING_EXACT (default) or one of the factored heuristics, which equal
 * scale·B⊗A + √(scale·δ)·(π·B⊗I + I⊗A/π) + δ·I and need δ ≥ 0.
 * @return BDL_OK; BDL_INVALID_ARGUMENT (unknown mode); BDL_WRONG_STATE (not K-FAC: the GGN kinds
 *         have no factors); BDL_UNSUPPORTED (EK-FAC, whose refit eigenvalues are not products).
 */
BDL_API bdl_status bdl_curvature_set_kfac_damping(bdl_curvature *curvature, int32_t mode);

/** Kind (BDL_CURVATURE_*), P, and the number of K-FAC layers (0 for the GGN kinds); any out may be NULL. */
BDL_API bdl_status bdl_curvature_info(const bdl_curvature *curvature, int32_t *out_kind,
                                      int64_t *out_num_parameters, int64_t *out_num_layers);

/** log det(scale·G + damping·I); BDL_NOT_POSITIVE_DEFINITE if singular (use damping > 0). */
BDL_API bdl_status bdl_curvature_logdet(const bdl_curvature *curvature, double scale, double damping,
                                        double *out_logdet);

/**
 * (scale·G + damping·I)^exponent applied to k vectors of P (k·P doubles, one after another);
 * exponent −1 is the exact damped solve. out_result may equal V; capacity ≥ k·P.
 */
BDL_API bdl_status bdl_curvature_apply_power(const bdl_curvature *curvature, double scale,
                                             double damping, double exponent, const double *V,
                                             int64_t k, double *out_result, int64_t capacity);

/** diag((scale·G + damping·I)^exponent), P doubles (capacity ≥ P). */
BDL_API bdl_status bdl_curvature_diagonal(const bdl_curvature *curvature, double scale,
                                          double damping, double exponent, double *out_diagonal,
                                          int64_t capacity);

/** The dense P × P matrix scale·G + damping·I (capacity ≥ P²): for small models and tests. */
BDL_API bdl_status bdl_curvature_dense(const bdl_curvature *curvature, double scale, double damping,
                                       double *out_matrix, int64_t capacity);

/**
 * The K-FAC factors of layer entry `index` (0 ≤ index < num_layers): its position in the model's
 * layer list, d_out and d_in, B (d_out × d_out, a sum) and A (d_in × d_in, a mean). Either buffer
 * may be NULL to skip it. BDL_WRONG_STATE for the GGN kinds, which have no factors.
 */
BDL_API bdl_status bdl_curvature_kfac_factors(const bdl_curvature *curvature, int64_t index,
                                              int64_t *out_layer, int64_t *out_d_out,
                                              int64_t *out_d_in, double *out_B, int64_t b_capacity,
                                              double *out_A, int64_t a_capacity);

/**
 * How fast an engine fit (bdl_curvature_fit of K-FAC or EK-FAC) added its statistics to the
 * factors: the useful flops of its Gram updates Σ a aᵀ and Σ g gᵀ (d²·rows for each d × d Gram,
 * the dsyrk count), the seconds spent in them summed over the workers, and how many workers ran
 * at once (one per OpenBLAS thread for big batches; see "Threading"). The aggregate rate is
 * flops · workers / thread_seconds, to be compared with the machine's dgemm rate. Any out pointer
 * may be NULL. BDL_WRONG_STATE for the GGN kinds and for factors from
 * bdl_kfac_accumulator_finalize, whose accumulation the caller drove.
 */
BDL_API bdl_status bdl_curvature_kfac_accumulation(const bdl_curvature *curvature, double *out_flops,
                                                   double *out_thread_seconds, int64_t *out_workers);

/**
 * K-FAC statistics fed by the caller — e.g. per-layer inputs and output-gradients captured with
 * hooks in PyTorch or JAX. Accumulators over disjoint data merge into the accumulator of the union
 * and save to a versioned, checksummed file.
 */
typedef struct bdl_kfac_accumulator bdl_kfac_accumulator;

/**
 * An empty accumulator for n_layers layers computing y_r = W a_r + b with W (d_out[i] × d_in[i]).
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL, sizes < 1, unknown approximation).
 */
BDL_API bdl_status bdl_kfac_accumulator_create(const int64_t *d_in, const int64_t *d_out,
                                               const int32_t *has_bias, int64_t n_layers,
                                               int32_t approximation,
                                               bdl_kfac_accumulator **out_accumulator);

/** Releases an accumulator. NULL is accepted and ignored. */
BDL_API void bdl_kfac_accumulator_free(bdl_kfac_accumulator *accumulator);

/** The number of layers and the approximation (BDL_KFAC_*); either out may be NULL. */
BDL_API bdl_status bdl_kfac_accumulator_info(const bdl_kfac_accumulator *accumulator,
                                             int64_t *out_num_layers, int32_t *out_approximation);

/** Layer `index`'s d_in, d_out, whether it has a bias, and the examples added so far. */
BDL_API bdl_status bdl_kfac_accumulator_layer(const bdl_kfac_accumulator *accumulator, int64_t index,
                                              int64_t *out_d_in, int64_t *out_d_out,
                                              int32_t *out_has_bias, int64_t *out_examples);

/**
 * Adds a batch for layer `layer`: a (n, positions, d_in) and g (n, k, positions, d_out), row-major
 * (positions = 1 for a plain dense layer). k must be the same in every batch of a layer (B sums
 * over the k vectors). On any error the accumulator is unchanged.
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL, layer out of range, n/positions/k < 1, overflow);
 *         BDL_NON_FINITE_INPUT (NaN/Inf in a or g, or a Σ aaᵀ or Σ ggᵀ whose sums of squares
 *         overflow); BDL_SHAPE_MISMATCH (k differs from earlier batches).
 */
BDL_API bdl_status bdl_kfac_accumulator_add(bdl_kfac_accumulator *accumulator, int64_t layer,
                                            const double *a, int64_t n, int64_t positions,
                                            const double *g, int64_t k);

/**
 * As bdl_kfac_accumulator_add for float32 statistics (half the memory of captured activations);
 * they are converted and accumulated in float64.
 */
BDL_API bdl_status bdl_kfac_accumulator_add_f32(bdl_kfac_accumulator *accumulator, int64_t layer,
                                                const float *a, int64_t n, int64_t positions,
                                                const float *g, int64_t k);

/** accumulator ← accumulator ∪ other; BDL_SHAPE_MISMATCH if their layers, flavours or K differ. */
BDL_API bdl_status bdl_kfac_accumulator_merge(bdl_kfac_accumulator *accumulator,
                                              const bdl_kfac_accumulator *other);

/**
 * Writes the accumulator to `path` (a temporary file renamed into place: a failure leaves any
 * previous file intact). BDL_IO_ERROR with the system's reason on failure.
 */
BDL_API bdl_status bdl_kfac_accumulator_save(const bdl_kfac_accumulator *accumulator,
                                             const char *path);

/**
 * Reads an accumulator saved by bdl_kfac_accumulator_save.
 * @return BDL_OK; BDL_IO_ERROR (cannot open/read); BDL_CORRUPT_DATA (wrong magic or version,
 *         truncated, trailing bytes, checksum mismatch, impossible sizes).
 */
BDL_API bdl_status bdl_kfac_accumulator_load(const char *path, bdl_kfac_accumulator **out_accumulator);

/**
 * The K-FAC curvature of the accumulated statistics, parameters laid out layer by layer (weight
 * (d_out × d_in) then bias), as a model with these layers would have them.
 */
BDL_API bdl_status bdl_kfac_accumulator_finalize(const bdl_kfac_accumulator *accumulator,
                                                 bdl_curvature **out_curvature);

/* ---------------------------------------------------------------------------------------------
 * Laplace: posteriors, the log marginal likelihood (evidence) and its gradients, evidence-optimal
 * priors, the linearised predictive, sampling, save/load
 *
 * A posterior q(θ) = N(θ*, P⁻¹) around the model's current parameters θ*, with precision
 * P = h·G + P0: G the curvature (exact GGN, its diagonal, or K-FAC), accumulated once at σ = 1 and
 * T = 1; h = 1/(σ²·T) for regression and 1/T for classification; P0 = diag(prior precision).
 * Prior precision: 1 value (scalar), one per parameter tensor in parameter-vector order (W₀, b₀,
 * W₁, b₁, …; "layerwise", laplace-torch's per-layer prior), or one per parameter ("diag").
 * With K-FAC, scalar and per-tensor priors are exact through each block's eigenbasis; a per-
 * parameter prior Δ enters as its eigenbasis projection (Q_B∘Q_B)ᵀ Δ (Q_A∘Q_A) (the SpaM code's
 * rule) — an approximation. The log marginal likelihood (laplace-torch's log_marginal_likelihood):
 *   log p(D) ≈ log p(D|θ*) − ½ [log det P − log det P0] − ½ (θ* − μ0)ᵀ P0 (θ* − μ0),
 *   log p(D|θ*) = −h·L − N·C·log(σ√(2π)) (regression, L = ½Σ‖y − f‖²), or −L/T (classification,
 *   L = Σ cross-entropy).
 * Gradients are with respect to log δ (each prior entry) and log σ, in closed form.
 * Values of the model's parameters are the caller's responsibility: a posterior records the
 * network's parameter count and refuses a model of another size.
 * ------------------------------------------------------------------------------------------- */

/** Posterior structures. */
enum {
  BDL_LAPLACE_FULL = 1,  /**< dense P (Cholesky): small models and last layers */
  BDL_LAPLACE_DIAG = 2,  /**< the exact GGN diagonal */
  BDL_LAPLACE_KRON = 3   /**< K-FAC blocks in their eigenbases (from EK-FAC curvature: its refit eigenvalues) */
};

/** Which parameters the posterior covers. */
enum {
  BDL_SUBSET_ALL = 1,        /**< every parameter */
  BDL_SUBSET_LAST_LAYER = 2  /**< the last Linear/Conv2d layer's weight and bias; the rest stays at θ* */
};

/** Prior-precision structures for bdl_laplace_optimize_prior_precision and bdl_train_marglik.
 *  Unit-wise (SpaM): δ_ij = a_i·b_j for a weight (out × in; a conv's (out, in) channel pair
 *  repeated over its kernel), one δ per bias element — out + in hyperparameters per weight,
 *  stored as one δ per parameter. */
enum { BDL_PRIOR_SCALAR = 1, BDL_PRIOR_LAYERWISE = 2, BDL_PRIOR_DIAG = 3, BDL_PRIOR_UNITWISE = 4 };

/** Options of bdl_laplace_fit (and hyperparameters for bdl_laplace_from_curvature); fill with
 *  bdl_laplace_params_init. Defaults follow laplace-torch. */
typedef struct bdl_laplace_params {
  uint32_t struct_size;           /**< set by the init function */
  int32_t likelihood;             /**< BDL_LIKELIHOOD_*; default classification */
  int32_t structure;              /**< BDL_LAPLACE_*; default K-FAC */
  int32_t subset;                 /**< BDL_SUBSET_*; default all */
  int32_t fisher;                 /**< BDL_FISHER_*; default exact (the GGN) */
  int32_t approximation;          /**< BDL_KFAC_*; default expand */
  int32_t damped;                 /**< K-FAC only: 1 uses (√h·B + √δ·I)⊗(√h·A + √δ·I) on weight
                                       blocks instead of h·B⊗A + δ·I (needs a scalar or per-tensor
                                       prior); default 0 */
  int64_t mc_samples;             /**< labels per example for BDL_FISHER_MC; default 1 */
  uint64_t seed;                  /**< seeds the Monte-Carlo labels; default 0 */
  int64_t batch_size;             /**< examples per pass; default 256 */
  const double *prior_precision;  /**< δ (see above); NULL: 1 */
  int64_t prior_precision_count;
  const double *prior_mean;       /**< μ0: 1 value or one per covered parameter; NULL: 0 */
  int64_t prior_mean_count;
  double sigma_noise;             /**< σ > 0 (regression); default 1 */
  double temperature;             /**< T > 0; default 1 */
} bdl_laplace_params;

/** Fills `params` with the defaults above. */
BDL_API bdl_status bdl_laplace_params_init(bdl_laplace_params *params);

typedef struct bdl_laplace bdl_laplace;

/** Progress of a pass over the data: examples done so far of total. */
typedef void (*bdl_pass_progress_fn)(int64_t done, int64_t total, void *user_data);

/**
 * Fits a posterior to `model` at its current parameters on (X, y): one pass for the loss and the
 * curvature. For BDL_SUBSET_LAST_LAYER the features before the last Linear/Conv2d layer are
 * computed once and the last layer's curvature is built from them and the output vectors (never
 * from a φ⊗I Jacobian).
 * @param y  labels or targets as for bdl_model_loss_gradient
 * @param params  options (NULL: the defaults)
 * @param progress  called after every batch (may be NULL)
 * @return BDL_OK; BDL_INVALID_ARGUMENT (bad options, labels, hyperparameters); BDL_NON_FINITE_INPUT;
 *         BDL_SHAPE_MISMATCH (prior length); BDL_OUT_OF_MEMORY (a full posterior of a large model);
 *         BDL_NOT_POSITIVE_DEFINITE (singular posterior precision).
 */
BDL_API bdl_status bdl_laplace_fit(const bdl_model *model, const double *X, int64_t n,
                                   const double *y, const bdl_laplace_params *params,
                                   bdl_pass_progress_fn progress, void *user_data,
                                   bdl_laplace **out_laplace);

/**
 * A posterior from curvature the caller has (e.g. bdl_kfac_accumulator_finalize of statistics
 * captured in PyTorch): K-FAC/EK-FAC curvature gives BDL_LAPLACE_KRON, the GGN diagonal
 * BDL_LAPLACE_DIAG, the dense GGN BDL_LAPLACE_FULL (params->structure is ignored).
 * @param theta, num_parameters  θ*, in the curvature's parameter order
 * @param tensor_sizes, n_tensors  the parameter tensors' sizes in order, for a per-tensor prior
 *        (NULL: the K-FAC blocks — each weight, then its bias — or one tensor)
 * @param loss  L: Σ cross-entropy (classification) or ½Σ‖y − f‖² (regression), at θ*
 * @param n_data, n_outputs  N and C
 * @param params  likelihood, damped and the hyperparameters (NULL: defaults)
 */
BDL_API bdl_status bdl_laplace_from_curvature(const bdl_curvature *curvature, const double *theta,
                                              int64_t num_parameters, const int64_t *tensor_sizes,
                                              int64_t n_tensors, double loss, int64_t n_data,
                                              int64_t n_outputs, const bdl_laplace_params *params,
                                              bdl_laplace **out_laplace);

/** Releases a posterior. NULL is accepted and ignored. */
BDL_API void bdl_laplace_free(bdl_laplace *laplace);

/** Structure (BDL_LAPLACE_*), subset (BDL_SUBSET_*), likelihood, the number of covered
 *  parameters, of parameter tensors, and the first covered parameter's index; any out may be NULL. */
BDL_API bdl_status bdl_laplace_info(const bdl_laplace *laplace, int32_t *out_structure,
                                    int32_t *out_subset, int32_t *out_likelihood,
                                    int64_t *out_num_parameters, int64_t *out_num_tensors,
                                    int64_t *out_first_parameter);

/**
 * Replaces the hyperparameters. prior_precision/prior_mean NULL keep the current ones; σ and T
 * must be > 0. Checked first (lengths, positivity, finiteness, P positive definite): on error
 * nothing changes.
 */
BDL_API bdl_status bdl_laplace_set_hyperparameters(bdl_laplace *laplace,
                                                   const double *prior_precision,
                                                   int64_t prior_precision_count,
                                                   const double *prior_mean,
                                                   int64_t prior_mean_count, double sigma_noise,
                                                   double temperature);

/**
 * The current hyperparameters: prior precision (its length in out_prior_count; out_prior may be
 * NULL to ask only the length), prior mean likewise (1 value or one per covered parameter), σ and
 * T. Every out may be NULL.
 */
BDL_API bdl_status bdl_laplace_hyperparameters(const bdl_laplace *laplace, double *out_prior,
                                               int64_t prior_capacity, int64_t *out_prior_count,
                                               double *out_prior_mean, int64_t mean_capacity,
                                               int64_t *out_mean_count, double *out_sigma_noise,
                                               double *out_temperature);

/**
 * The log marginal likelihood. prior_precision NULL: the current prior; sigma_noise NULL: the
 * current σ. The posterior itself is not changed.
 */
BDL_API bdl_status bdl_laplace_log_marginal_likelihood(const bdl_laplace *laplace,
                                                       const double *prior_precision,
                                                       int64_t prior_precision_count,
                                                       const double *sigma_noise,
                                                       double *out_value);

/**
 * The evidence (out_value, may be NULL) and its gradient with respect to log δ (one entry per
 * prior-precision value, capacity ≥ that count) and log σ (0 for classification; may be NULL),
 * at the given or current hyperparameters as for bdl_laplace_log_marginal_likelihood.
 */
BDL_API bdl_status bdl_laplace_log_marginal_likelihood_grad(
    const bdl_laplace *laplace, const double *prior_precision, int64_t prior_precision_count,
    const double *sigma_noise, double *out_value, double *out_grad_log_prior, int64_t capacity,
    double *out_grad_log_sigma);

/** The outcome of bdl_laplace_optimize_prior_precision. */
typedef struct bdl_evidence_optimum {
  double log_marginal_likelihood;
  double gradient_norm;           /**< ‖∇ over log δ (and log σ)‖₂, bound-active entries excluded */
  int64_t iterations;
  int32_t converged;              /**< 1 if gradient_norm < tolerance */
} bdl_evidence_optimum;

/**
 * Maximises the evidence over the prior precision of `prior_structure` (BDL_PRIOR_*), and over σ
 * for regression when optimize_sigma is 1, starting from the current values. Newton's method on
 * the analytic gradient (a separable diagonal Newton for a per-parameter prior on diag; L-BFGS
 * for per-parameter and unit-wise priors on coupled structures); each log δ (unit-wise: each log
 * factor) stays in [log 1e−10, log 1e10]. tolerance ≤ 0 means 1e−8; max_iterations ≤ 0 means 200.
 * The result is stored as the posterior's hyperparameters (also when not converged: see
 * out->converged). BDL_PRIOR_UNITWISE needs the layer shapes, so it works on posteriors made by
 * bdl_laplace_fit (BDL_INVALID_ARGUMENT otherwise).
 */
BDL_API bdl_status bdl_laplace_optimize_prior_precision(bdl_laplace *laplace,
                                                        int32_t prior_structure,
                                                        int32_t optimize_sigma, double tolerance,
                                                        int64_t max_iterations,
                                                        bdl_evidence_optimum *out);

/**
 * The linearised (GLM) predictive's moments for n inputs: f(x; θ*) (n·C) and the functional
 * covariance Σ_f = J P⁻¹ Jᵀ (n·C·C), without σ² — laplace-torch's f_mu and f_var. Either out may be
 * NULL. `model` must be the network the posterior was fitted to (same size).
 */
BDL_API bdl_status bdl_laplace_functional_variance(const bdl_laplace *laplace,
                                                   const bdl_model *model, const double *X,
                                                   int64_t n, double *out_mean,
                                                   int64_t mean_capacity, double *out_variance,
                                                   int64_t variance_capacity);

/** Links of the classification predictive. */
enum {
  BDL_LINK_PROBIT = 1,  /**< softmax(f/√(1 + π/8·diag Σ_f)) (laplace-torch's default) */
  BDL_LINK_BRIDGE = 2,  /**< the Laplace bridge's Dirichlet mean */
  BDL_LINK_MC = 3       /**< mean of softmax(f) over n_samples draws f ~ N(f*, Σ_f), seeded */
};

/** Class probabilities (n·C) of the linearised predictive; BDL_WRONG_STATE for regression. */
BDL_API bdl_status bdl_laplace_predict(const bdl_laplace *laplace, const bdl_model *model,
                                       const double *X, int64_t n, int32_t link,
                                       int64_t n_samples, uint64_t seed, double *out_probs,
                                       int64_t capacity);

/**
 * Regression predictive: mean f(x; θ*) (n·C) and covariance (n·C·C) = Σ_f + σ²I, or Σ_f when
 * include_noise is 0. BDL_WRONG_STATE for classification.
 */
BDL_API bdl_status bdl_laplace_predict_regression(const bdl_laplace *laplace,
                                                  const bdl_model *model, const double *X,
                                                  int64_t n, int32_t include_noise,
                                                  double *out_mean, int64_t mean_capacity,
                                                  double *out_variance, int64_t variance_capacity);

/**
 * The sampling predictive: the network at n_samples draws θ ~ N(θ*, P⁻¹) (seeded). Classification:
 * mean class probabilities (n·C; out_variance must be NULL). Regression: mean (n·C) and covariance
 * over draws (n·C·C, + σ²I with include_noise).
 */
BDL_API bdl_status bdl_laplace_predict_sampling(const bdl_laplace *laplace, const bdl_model *model,
                                                const double *X, int64_t n, int64_t n_samples,
                                                uint64_t seed, int32_t include_noise,
                                                double *out_mean, int64_t mean_capacity,
                                                double *out_variance, int64_t variance_capacity);

/** n_samples draws θ ~ N(θ*, P⁻¹) of the covered parameters (n_samples·P doubles), seeded. */
BDL_API bdl_status bdl_laplace_sample(const bdl_laplace *laplace, int64_t n_samples, uint64_t seed,
                                      double *out_samples, int64_t capacity);

/** log N(θ; θ*, P⁻¹) for θ over the covered parameters. */
BDL_API bdl_status bdl_laplace_log_prob(const bdl_laplace *laplace, const double *theta,
                                        int64_t num_parameters, double *out_value);

/** Writes the posterior to `path` (versioned, checksummed; atomic). BDL_IO_ERROR on failure. */
BDL_API bdl_status bdl_laplace_save(const bdl_laplace *laplace, const char *path);

/**
 * Reads a posterior saved by bdl_laplace_save. If `model` is not NULL it must have the parameter
 * count the posterior was fitted to (else BDL_SHAPE_MISMATCH).
 * @return BDL_OK; BDL_IO_ERROR; BDL_CORRUPT_DATA (wrong magic or version, truncated, damaged,
 *         inconsistent contents); BDL_SHAPE_MISMATCH.
 */
BDL_API bdl_status bdl_laplace_load(const char *path, const bdl_model *model,
                                    bdl_laplace **out_laplace);

/* ---------------------------------------------------------------------------------------------
 * Marginal-likelihood training (online empirical Bayes, Immer et al. 2021)
 *
 * MAP steps on Σ NLL + ½ θᵀ diag(δ) θ alternate with hyperparameter steps: after every
 * `frequency`-th epoch past `burnin`, the Laplace posterior is refitted at the current θ and the
 * evidence is maximised over log δ (and log σ for regression) to a gradient norm below
 * `tolerance` (bdl_laplace_optimize_prior_precision), not stepped as laplace-torch's 10 Adam
 * steps (its n_hypersteps) are. The parameters with the best evidence seen at a hyperparameter
 * step are kept, so no validation set is needed. The MAP optimiser's state persists across
 * hyperparameter steps.
 * ------------------------------------------------------------------------------------------- */

/** What the hyperparameter steps of bdl_train_marglik maximise. */
enum {
  BDL_OBJECTIVE_LAPLACE = 1,  /**< the evidence of the refitted Laplace posterior (laplace.structure) */
  BDL_OBJECTIVE_NTK_BOUND = 2 /**< the NTK lower bound on the full-GGN evidence (bdl_ntk_evidence_bound),
                                   batches redrawn at each step; scalar or layerwise prior only */
};

/** Options of bdl_train_marglik; fill with bdl_marglik_params_init. */
typedef struct bdl_marglik_params {
  uint32_t struct_size;           /**< set by the init function */
  bdl_train_params train;         /**< the MAP optimiser, epochs, batch size, seed (its defaults);
                                       train.likelihood is the task, train.sigma the initial σ,
                                       train.prior_precision the initial δ (NULL: 1, laplace-torch's
                                       prior_prec_init) */
  bdl_laplace_params laplace;     /**< the posterior refitted at each step: structure (default
                                       K-FAC), approximation (expand/reduce), fisher, batch_size,
                                       temperature; its subset must be BDL_SUBSET_ALL and its
                                       likelihood, prior and sigma fields are ignored */
  int32_t prior_structure;        /**< BDL_PRIOR_*; default layerwise (laplace-torch's default) */
  int32_t optimize_sigma;         /**< regression: tune σ too; default 1 */
  int64_t frequency;              /**< F ≥ 1: a hyperparameter step every F epochs; default 1 */
  int64_t burnin;                 /**< epochs at the initial δ before the first step; default 0 */
  double tolerance;               /**< stationarity of each solve; default 1e−6 */
  int64_t max_hyper_iterations;   /**< per solve; default 100 */
  int32_t objective;              /**< BDL_OBJECTIVE_*; default Laplace */
  int64_t bound_batch_size;       /**< NTK bound: examples per batch; 0 (default): all in one batch */
  int32_t independent_outputs;    /**< NTK bound: the classes-independent variant; default 0 */
  int32_t group_by_class;         /**< NTK bound: class-grouped batches (classification); default 0 */
} bdl_marglik_params;

/** Fills `params` with the defaults above (train and laplace with their own init functions). */
BDL_API bdl_status bdl_marglik_params_init(bdl_marglik_params *params);

/** What bdl_train_marglik reports after each epoch. */
typedef struct bdl_marglik_progress {
  int64_t epoch;                  /**< 1-based epoch just finished */
  int64_t epochs;
  double objective;               /**< mean minibatch MAP objective over the epoch */
  double mean_negative_log_likelihood;
  int32_t hyperparameter_step;    /**< 1 if this epoch ended with a hyperparameter step */
  double log_marginal_likelihood; /**< the objective (evidence or NTK bound) after that step (NaN
                                       without a step) */
  double sigma_noise;             /**< σ the next epochs train with (regression) */
} bdl_marglik_progress;

/** Progress callback of bdl_train_marglik: return 0 to continue, nonzero to stop after this epoch. */
typedef int32_t (*bdl_marglik_progress_fn)(const bdl_marglik_progress *progress, void *user_data);

/**
 * Trains `model` in place by the evidence and returns the posterior at the kept parameters, with
 * its evidence-optimal hyperparameters (read them with bdl_laplace_hyperparameters).
 * @param y  labels or targets as for bdl_model_loss_gradient
 * @param params  options (NULL: the defaults)
 * @param progress  called after every epoch (may be NULL)
 * @param[out] out_laplace  the posterior (free with bdl_laplace_free)
 * @param[out] out_history, history_capacity  one report per epoch run (may be NULL; else the
 *        capacity must cover train.epochs)
 * @param[out] out_best_epoch  the epoch whose parameters were kept (0: no hyperparameter step
 *        ran; the final θ is kept). May be NULL.
 * @return BDL_OK; BDL_INVALID_ARGUMENT (bad options, labels, a non-positive initial δ, the NTK
 *         objective with a per-parameter or unit-wise prior); BDL_SHAPE_MISMATCH (prior length,
 *         history capacity); BDL_NON_FINITE_INPUT; BDL_OUT_OF_MEMORY (NTK batches too large);
 *         BDL_NOT_CONVERGED (MAP training diverged: θ is restored). On error θ is unchanged.
 */
BDL_API bdl_status bdl_train_marglik(bdl_model *model, const double *X, int64_t n, const double *y,
                                     const bdl_marglik_params *params,
                                     bdl_marglik_progress_fn progress, void *user_data,
                                     bdl_laplace **out_laplace, bdl_marglik_progress *out_history,
                                     int64_t history_capacity, int64_t *out_best_epoch);

/* ---------------------------------------------------------------------------------------------
 * Calibration metrics of class probabilities (n × C, rows ≥ 0 summing to 1 within 1e−6) against
 * labels in [0, C).
 * ------------------------------------------------------------------------------------------- */

/** Fraction of examples whose most probable class (first on ties) is the label. */
BDL_API bdl_status bdl_metrics_accuracy(const double *probs, int64_t n, int64_t n_classes,
                                        const int64_t *labels, double *out_value);

/** Mean negative log-likelihood −(1/n) Σ log p_{n, y_n} (+inf if a label has probability 0). */
BDL_API bdl_status bdl_metrics_nll(const double *probs, int64_t n, int64_t n_classes,
                                   const int64_t *labels, double *out_value);

/** Brier score (1/n) Σ_n Σ_c (p_nc − [c = y_n])², in [0, 2]. */
BDL_API bdl_status bdl_metrics_brier(const double *probs, int64_t n, int64_t n_classes,
                                     const int64_t *labels, double *out_value);

/**
 * Expected calibration error Σ_b (n_b/n)·|accuracy_b − confidence_b| over `bins` equal-width bins
 * (i/B, (i+1)/B] of the confidence max_c p (the first bin also holds 0); 15 is the usual choice.
 */
BDL_API bdl_status bdl_metrics_ece(const double *probs, int64_t n, int64_t n_classes,
                                   const int64_t *labels, int64_t bins, double *out_value);

/**
 * The reliability diagram behind the ECE: per bin the example count, mean confidence and
 * accuracy (0 for empty bins); each out array has `bins` entries and may be NULL.
 */
BDL_API bdl_status bdl_metrics_reliability(const double *probs, int64_t n, int64_t n_classes,
                                           const int64_t *labels, int64_t bins,
                                           int64_t *out_counts, double *out_confidence,
                                           double *out_accuracy);

/* ---------------------------------------------------------------------------------------------
 * Influence: which training examples moved a prediction
 *
 * For a query measurement m(θ; z_q) and a training example z_j,
 *   τ(z_q, z_j) = ∇_θ m(θ*; z_q)ᵀ (G + λI)⁻¹ ∇_θ ℓ(θ*; z_j),
 * G the curvature as a SUM over the N training examples (DESIGN conventions), λ ≥ 0 the damping.
 * Sign: for the summed objective Σ_j ℓ_j + ½θᵀP0θ (Hessian G + P0 ≈ G + λI), removing a set S of
 * training examples changes m to first order by +Σ_{j∈S} τ(z_q, z_j): a positive score means the
 * example pushed m down (for a loss measurement: it helped the query). kronfluence averages G
 * over N and appends the bias to the input; on a bias-free model its score at damping d equals
 * N × τ at λ = N·d.
 * ------------------------------------------------------------------------------------------- */

/** Curvatures G. */
enum {
  BDL_INFLUENCE_GGN = 1,       /**< the dense GGN (small models) */
  BDL_INFLUENCE_DIAG = 2,      /**< the exact GGN diagonal */
  BDL_INFLUENCE_KFAC = 3,      /**< K-FAC, inverted exactly: 1/(β_i α_j + λ) */
  BDL_INFLUENCE_EKFAC = 4,     /**< EK-FAC: K-FAC's eigenbases, refit eigenvalues: 1/(Λ_ij + λ) */
  BDL_INFLUENCE_IDENTITY = 5   /**< G + λI replaced by I: gradient dot products (TracIn-style) */
};

/** Query measurements m. */
enum {
  BDL_MEASURE_LOSS = 1,        /**< the query's loss at its label (∂m/∂f = p − e_y, or f − y) */
  BDL_MEASURE_LOG_PROB = 2,    /**< log p(y_q | x_q) = −loss (classification) */
  BDL_MEASURE_MARGIN = 3,      /**< f_y − max_{c≠y} f_c (classification) */
  BDL_MEASURE_COTANGENT = 4    /**< any function of the outputs, given by ∂m/∂f per query (n × C) */
};

/** Options of bdl_influence_fit; fill with bdl_influence_params_init. */
typedef struct bdl_influence_params {
  uint32_t struct_size;        /**< set by the init function */
  int32_t likelihood;          /**< BDL_LIKELIHOOD_*; default classification */
  int32_t curvature;           /**< BDL_INFLUENCE_*; default EK-FAC */
  int32_t fisher;              /**< BDL_FISHER_*; default exact */
  int32_t approximation;       /**< BDL_KFAC_*; default expand */
  int32_t relative_damping;    /**< 1: λ = damping × the mean eigenvalue of G on each parameter
                                    tensor (scale-free; the default); 0: λ = damping */
  double damping;              /**< ≥ 0; default 0.1 (relative) */
  int64_t mc_samples;          /**< labels per example for BDL_FISHER_MC; default 1 */
  uint64_t seed;               /**< seeds the Monte-Carlo labels; default 0 */
  int64_t batch_size;          /**< examples per pass; default 256 */
} bdl_influence_params;

/** Fills `params` with the defaults above. */
BDL_API bdl_status bdl_influence_params_init(bdl_influence_params *params);

typedef struct bdl_influence bdl_influence;

/**
 * Fits the curvature on the training set (X, y) at the model's current parameters and keeps a
 * copy of the training set for scoring.
 * @return BDL_OK; BDL_INVALID_ARGUMENT (bad options, damping < 0, labels); BDL_NON_FINITE_INPUT;
 *         BDL_SHAPE_MISMATCH; BDL_OUT_OF_MEMORY (the dense GGN of a large model).
 */
BDL_API bdl_status bdl_influence_fit(const bdl_model *model, const double *X, int64_t n,
                                     const double *y, const bdl_influence_params *params,
                                     bdl_pass_progress_fn progress, void *user_data,
                                     bdl_influence **out_influence);

/** Releases an influence object. NULL is accepted and ignored. */
BDL_API void bdl_influence_free(bdl_influence *influence);

/** Curvature (BDL_INFLUENCE_*), the training set size and the parameter count; any out may be NULL. */
BDL_API bdl_status bdl_influence_info(const bdl_influence *influence, int32_t *out_curvature,
                                      int64_t *out_n_train, int64_t *out_num_parameters);

/**
 * Pairwise scores τ(z_q, z_j) for n_queries queries (row q) and every training example (column
 * j): out_scores holds n_queries·n_train doubles. `y_query` holds the queries' labels or targets
 * (as for bdl_model_loss_gradient; NULL for BDL_MEASURE_COTANGENT); `cotangents` (n_queries·C)
 * only for BDL_MEASURE_COTANGENT. The queries are preconditioned once; training gradients are
 * formed batch by batch and never stored. `progress` follows the training batches (may be NULL).
 * @return BDL_OK; BDL_SHAPE_MISMATCH (model of another size, capacity); BDL_INVALID_ARGUMENT;
 *         BDL_NOT_POSITIVE_DEFINITE (λ = 0 with a singular curvature).
 */
BDL_API bdl_status bdl_influence_scores(const bdl_influence *influence, const bdl_model *model,
                                        const double *X_query, int64_t n_queries,
                                        const double *y_query, int32_t measurement,
                                        const double *cotangents, bdl_pass_progress_fn progress,
                                        void *user_data, double *out_scores, int64_t capacity);

/** The damping λ of every parameter (num_parameters doubles): the value given, or with relative
 *  damping r × the mean eigenvalue of G on each parameter tensor. */
BDL_API bdl_status bdl_influence_damping(const bdl_influence *influence, double *out_damping,
                                         int64_t capacity);

/** Self-influence τ(z_j, z_j) (loss measurement) of every training example (n_train doubles);
 *  `progress` follows the training batches (may be NULL). */
BDL_API bdl_status bdl_influence_self(const bdl_influence *influence, const bdl_model *model,
                                      bdl_pass_progress_fn progress, void *user_data,
                                      double *out_scores, int64_t capacity);

/** One layer's statistics captured by the caller: a (n, positions, d_in) and g (n, 1, positions,
 *  d_out), row-major (positions = 1 for a plain dense layer). */
typedef struct bdl_layer_data {
  const double *a;
  const double *g;
  int64_t positions;
} bdl_layer_data;

/**
 * Pairwise scores for a model that lives elsewhere (e.g. in PyTorch): per K-FAC layer of
 * `curvature` (K-FAC or EK-FAC, e.g. bdl_kfac_accumulator_finalize of the training statistics)
 * the queries' statistics (g: output-gradients of the measurement) and the training examples'
 * (g: of the loss), layer i of the arrays ↔ layer i of the curvature; both arrays hold n_layers
 * entries, which must equal the curvature's layer count (BDL_SHAPE_MISMATCH otherwise). damping and
 * relative_damping as in bdl_influence_params: with relative_damping 1, λ = damping × the mean
 * eigenvalue of each block.
 * out_scores: n_queries·n_train doubles (row q). Call per batch of training examples for more.
 * @return BDL_OK; BDL_WRONG_STATE (not a K-FAC/EK-FAC curvature); BDL_SHAPE_MISMATCH;
 *         BDL_INVALID_ARGUMENT (NULL, sizes, damping < 0); BDL_NON_FINITE_INPUT.
 */
BDL_API bdl_status bdl_influence_scores_from_statistics(
    const bdl_curvature *curvature, double damping, int32_t relative_damping, int64_t n_layers,
    const bdl_layer_data *queries, int64_t n_queries, const bdl_layer_data *train, int64_t n_train,
    double *out_scores, int64_t capacity);

/**
 * Per row of `scores` (n_rows × n_cols), the column indices of the k largest scores (most helpful)
 * and of the k smallest (most harmful), in order, ties to the lower index: n_rows·k int64 each;
 * either out may be NULL.
 */
BDL_API bdl_status bdl_influence_top_k(const double *scores, int64_t n_rows, int64_t n_cols,
                                       int64_t k, int64_t *out_helpful, int64_t *out_harmful);

/**
 * The linear datamodeling score: `subsets` random subsets of ⌊fraction·n⌋ training examples, a
 * copy of `model` (its current parameters are the common initialisation) retrained on each with
 * `train` (its likelihood is the task's; seed replaced by the subset's, drawn from `seed`), and
 * per query the Spearman
 * correlation between the measurement after retraining and the prediction Σ_{j∉S} τ(z_q, z_j).
 * Defaults used by dattri: subsets = 100, fraction = 0.5. out_per_query (n_queries; NaN where
 * undefined), out_mean and out_subset_seeds (`subsets` entries: each subset's seed, which fixes
 * its choice and its training shuffles) may be NULL. `progress` follows the retrainings.
 */
BDL_API bdl_status bdl_evaluation_lds(const bdl_model *model, const double *X, int64_t n,
                                      const double *y, const double *X_query,
                                      int64_t n_queries, const double *y_query,
                                      int32_t measurement, const double *cotangents,
                                      const double *scores, int64_t subsets, double fraction,
                                      const bdl_train_params *train, uint64_t seed,
                                      bdl_pass_progress_fn progress, void *user_data,
                                      double *out_per_query, double *out_mean,
                                      uint64_t *out_subset_seeds);

/**
 * Per query, the change of its measurement when its k most helpful training examples (by
 * `scores`) are removed and `model` is retrained from its current parameters with `train`, and
 * the same for k random examples (seeded) — relative to retraining on all examples.
 * out_without_top_k and out_without_random have n_queries entries each. 1 + 2·n_queries
 * retrainings; `progress` follows the queries.
 */
BDL_API bdl_status bdl_evaluation_retrain_without_top_k(
    const bdl_model *model, const double *X, int64_t n, const double *y, const double *X_query,
    int64_t n_queries, const double *y_query, int32_t measurement,
    const double *cotangents, const double *scores, int64_t k, const bdl_train_params *train,
    uint64_t seed, bdl_pass_progress_fn progress, void *user_data, double *out_without_top_k,
    double *out_without_random);

/* ---------------------------------------------------------------------------------------------
 * Pruning: scores, structured units, masks, sparsity and FLOP counts, model files
 *
 * A score ranks parameters: the smallest are removed first. With θ the posterior mean θ* of a
 * Laplace posterior (or the model's parameters when no posterior is given) and P = h·G + P0 its
 * precision at its current hyperparameters (h = 1/(σ²T) for regression, 1/T for
 * classification), in the posterior's own structure and never formed densely where the structure
 * avoids it:
 *   diag: P_ii = h·G_ii + δ_i;
 *   kron: per block, with P's eigenvalues d_pq = h·β_p·α_q + δ in the eigenbasis Q_B ⊗ Q_A,
 *         P_(m,n) = Σ_pq Q_B[m,p]²·Q_A[n,q]²·d_pq and [P⁻¹]_(m,n) = Σ_pq Q_B[m,p]²·Q_A[n,q]²/d_pq
 *         (the prior is inside d once; a per-parameter prior as its eigenbasis projection, a
 *         damped block as its damped product — the form the posterior itself uses);
 *   full: the diagonals of the dense P and of P⁻¹ (Cholesky).
 * Structured pruning removes whole units: an output neuron of a Linear layer (its row of W and
 * its bias entry) or an output filter of a Conv2d layer (W[j] and its bias entry), in every
 * Linear/Conv2d layer except the last (the output layer is never pruned structurally). Units are
 * ordered layer by layer, unit by unit; a unit's score is the sum of its parameters' scores.
 * A mask holds one value per parameter: 1 keeps it, 0 removes it (θ_i = 0). Through the C API a
 * mask is a plain array, so only its length can be checked against a model.
 * ------------------------------------------------------------------------------------------- */

/** Pruning criteria (bdl_pruning_scores). */
enum {
  BDL_PRUNING_OPD = 1,        /**< P_ii·θ_i²: optimal posterior damage (Dhahri et al. 2024, SpaM) */
  BDL_PRUNING_OBD = 2,        /**< ½·h·G_ii·θ_i²: optimal brain damage; G_ii the exact GGN diagonal
                                   (full, diag) or K-FAC's diagonal (kron); OPD = 2·OBD + δ_i·θ_i²
                                   for diag */
  BDL_PRUNING_MAGNITUDE = 3,  /**< |θ_i| */
  BDL_PRUNING_RANDOM = 4,     /**< uniform on [0, 1) from `seed` (the same on every platform) */
  BDL_PRUNING_KFAC_OBS = 5    /**< θ_i²/[P⁻¹]_ii: the optimal-brain-surgeon saliency with the
                                   posterior's variances (Kronecker-factored for kron), without
                                   Hassibi & Stork's ½ (equal to OPD for diag) */
};

/**
 * Pruning scores: one per parameter the posterior covers (or per model parameter when laplace is
 * NULL), or with `structured` 1 one per unit of `model` (see above).
 *
 * @param laplace    a posterior, or NULL for BDL_PRUNING_MAGNITUDE and BDL_PRUNING_RANDOM
 * @param model      the network the posterior was fitted to (size and layout are checked; its
 *                   values are not read when laplace is given), or NULL unless `structured`
 * @param criterion  BDL_PRUNING_*
 * @param structured 0: per parameter; 1: per unit (needs `model`, and a posterior over every
 *                   parameter, not BDL_SUBSET_LAST_LAYER)
 * @param seed       seeds BDL_PRUNING_RANDOM (ignored otherwise)
 * @param[out] out_scores  the scores; may be NULL to ask only the count
 * @param capacity   length of out_scores (≥ the count) when it is given
 * @param[out] out_count   the number of scores (may be NULL)
 * @return BDL_OK; BDL_INVALID_ARGUMENT (both NULL, a posterior criterion without laplace,
 *         structured without model or from a last-layer posterior, a model without a Linear/Conv2d
 *         layer before its output layer, unknown criterion, structured not 0/1);
 *         BDL_SHAPE_MISMATCH (a model of another size or layout than the posterior's, capacity).
 */
BDL_API bdl_status bdl_pruning_scores(const bdl_laplace *laplace, const bdl_model *model,
                                      int32_t criterion, int32_t structured, uint64_t seed,
                                      double *out_scores, int64_t capacity, int64_t *out_count);

/**
 * A pruning mask for `model` (P doubles, 0 or 1) from scores.
 *
 * Unstructured (structured = 0): global over the network — the k = round(s·n) of the n prunable
 * parameters with the smallest scores are removed (a threshold at the s-quantile of all prunable
 * scores), ties to the earlier parameter. Prunable are the weights, and the biases too when
 * include_biases is 1. Default 0 (weights only): biases are ~1% of a network, cost no
 * multiplications, and zeroing one shifts a unit's every activation instead of cutting a
 * connection; SpaM and the magnitude baselines prune weights only. Unpruned biases stay 1.
 * Structured (structured = 1): per prunable layer l, the k_l = round(f_l·n_l) of its n_l units
 * with the smallest unit scores (ties: the lower unit) lose their weights and bias, f_l =
 * per_layer[l], or `sparsity` for every layer when per_layer is NULL.
 * Sparsity 0 gives the all-ones mask: applying it changes no bit of θ.
 *
 * @param scores, n_scores  one per model parameter (unstructured) or per unit (structured), e.g.
 *                          from bdl_pruning_scores; NaN is refused, ±Inf is ordered
 * @param sparsity          s in [0, 1) (unstructured; structured without per_layer)
 * @param per_layer, n_per_layer  structured only: one fraction in [0, 1) per prunable layer, or
 *                          NULL
 * @param include_biases    unstructured only: 0 or 1
 * @param[out] out_mask     P doubles; capacity ≥ P
 * @return BDL_OK; BDL_INVALID_ARGUMENT (s or a fraction outside [0, 1), one that would remove
 *         every prunable parameter or every unit of a layer, flags not 0/1, structured pruning of
 *         a model without a Linear/Conv2d layer before its output); BDL_SHAPE_MISMATCH (n_scores,
 *         n_per_layer, capacity); BDL_NON_FINITE_INPUT (NaN score).
 */
BDL_API bdl_status bdl_pruning_mask(const bdl_model *model, const double *scores, int64_t n_scores,
                                    double sparsity, int32_t structured, const double *per_layer,
                                    int64_t n_per_layer, int32_t include_biases,
                                    double *out_mask, int64_t capacity);

/**
 * Applies a mask: θ_i = +0 where mask_i = 0; every kept θ_i is left bit for bit. Keep the mask in
 * bdl_train_params.mask to keep the pruned parameters at 0 through further training.
 * @param mask, count  P values, each 0 or 1
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL, a value other than 0 or 1); BDL_SHAPE_MISMATCH
 *         (count ≠ P). On failure θ is unchanged.
 */
BDL_API bdl_status bdl_model_apply_mask(bdl_model *model, const double *mask, int64_t count);

/**
 * The SpaM evaluation of a classifier: for each sparsity s_i, `model` pruned by `scores` (global
 * unstructured pruning of the weights, as bdl_pruning_mask with include_biases = 0), optionally
 * fine-tuned with the mask kept, then scored on the test set with p = softmax(f(x; θ ⊙ m)):
 * accuracy, mean NLL (from the logits) and ECE (15 equal-width bins). `model` is not changed.
 * @param scores, n_scores  one per model parameter, any criterion (bdl_pruning_scores)
 * @param sparsities, n_sparsities  each in [0, 1); SpaM's curve uses 0.2, 0.4, 0.6, 0.7, 0.75,
 *                          0.8, 0.85, 0.9, 0.95, 0.99
 * @param X_test, n_test, y_test  test inputs and labels in [0, C)
 * @param fine_tune         NULL (no fine-tuning), or training options (bdl_train_params; its
 *                          likelihood must be classification, its mask is replaced by each
 *                          pruning mask) run on X_train, y_train after pruning
 * @param[out] out_accuracy, out_nll, out_ece  n_sparsities values each (any may be NULL)
 * @return BDL_OK; BDL_INVALID_ARGUMENT (a sparsity outside [0, 1), labels, NULL arrays, bad
 *         fine-tuning options); BDL_SHAPE_MISMATCH (n_scores ≠ P); BDL_NON_FINITE_INPUT;
 *         BDL_NOT_CONVERGED (fine-tuning diverged).
 */
BDL_API bdl_status bdl_pruning_sparsity_curve(const bdl_model *model, const double *scores,
                                              int64_t n_scores, const double *sparsities,
                                              int64_t n_sparsities, const double *X_test,
                                              int64_t n_test, const double *y_test,
                                              const bdl_train_params *fine_tune,
                                              const double *X_train, int64_t n_train,
                                              const double *y_train, double *out_accuracy,
                                              double *out_nll, double *out_ece);

/**
 * What pruning left of one Linear/Conv2d layer. A layer computing y_r = W·a_r + b at R positions
 * per example (R = 1 for a dense layer on vectors, T on sequences, H_out·W_out for a convolution)
 * costs R·d_out·d_in multiply-accumulates (MACs; one MAC = 2 FLOPs) dense and R·(kept weights)
 * after pruning. Bias additions, activations and pooling are not counted; inputs that are dead
 * because an upstream unit was pruned are not discounted.
 */
typedef struct bdl_layer_sparsity {
  int64_t layer;        /**< position in the model's layer list */
  int64_t weights;      /**< d_out·d_in */
  int64_t weights_kept;
  int64_t biases;       /**< d_out, or 0 without a bias */
  int64_t biases_kept;
  int64_t units;        /**< output neurons or filters, d_out */
  int64_t units_kept;   /**< units with at least one kept weight or bias */
  int64_t macs;         /**< R·d_out·d_in per example */
  int64_t macs_kept;    /**< R·weights_kept per example */
} bdl_layer_sparsity;

/**
 * Per Linear/Conv2d layer, in layer order: parameters and multiply-accumulates dense and kept.
 * @param mask, count  P values 0/1; NULL: the parameters that are exactly 0 count as pruned
 *                     (count ignored)
 * @param[out] out_layers  may be NULL to ask only the count; capacity ≥ the count otherwise
 * @param[out] out_count   the number of Linear/Conv2d layers (may be NULL)
 * @return BDL_OK; BDL_INVALID_ARGUMENT (mask values); BDL_SHAPE_MISMATCH (count ≠ P, capacity).
 */
BDL_API bdl_status bdl_model_sparsity(const bdl_model *model, const double *mask, int64_t count,
                                      bdl_layer_sparsity *out_layers, int64_t capacity,
                                      int64_t *out_count);

/**
 * The architecture of a model: its layers, as bdl_layer_spec values whose unused fields are 0,
 * and the shape of one input example, as bdl_model_create takes them.
 * @param[out] out_layers       may be NULL; capacity ≥ the layer count otherwise
 * @param[out] out_count        the number of layers (may be NULL)
 * @param[out] out_input_shape  may be NULL; shape_capacity ≥ the input rank otherwise
 * @param[out] out_input_rank   1, 2 or 3 (may be NULL)
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL model); BDL_SHAPE_MISMATCH (a capacity).
 */
BDL_API bdl_status bdl_model_layers(const bdl_model *model, bdl_layer_spec *out_layers,
                                    int64_t capacity, int64_t *out_count,
                                    int64_t *out_input_shape, int64_t shape_capacity,
                                    int64_t *out_input_rank);

/**
 * Writes the model — its architecture, θ and, if `mask` is not NULL, a pruning mask — to `path`
 * (versioned, checksummed; atomic: a temporary file renamed over the target, so a failed save
 * leaves any previous file intact). θ and the mask are restored bit for bit by bdl_model_load.
 * @param mask, mask_count  NULL, or P values 0/1
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL model or path, mask values); BDL_SHAPE_MISMATCH
 *         (mask_count ≠ P); BDL_IO_ERROR.
 */
BDL_API bdl_status bdl_model_save(const bdl_model *model, const double *mask, int64_t mask_count,
                                  const char *path);

/**
 * Reads a model file and reports its parameter count P and whether it holds a mask (either out
 * may be NULL): what a caller needs to size bdl_model_load's mask buffer.
 * @return as bdl_model_load.
 */
BDL_API bdl_status bdl_model_file_info(const char *path, int64_t *out_num_parameters,
                                       int32_t *out_has_mask);

/**
 * Reads a model saved by bdl_model_save as a new handle (free it with bdl_model_free).
 * @param[out] out_model     the model
 * @param[out] out_mask      NULL to ignore a stored mask; otherwise receives the mask (P doubles,
 *                           capacity ≥ P) if the file holds one, and is untouched if not
 * @param[out] out_has_mask  1 if the file holds a mask, else 0 (may be NULL)
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL path or out_model); BDL_IO_ERROR; BDL_CORRUPT_DATA
 *         (wrong magic or version, truncated, damaged, inconsistent contents); BDL_SHAPE_MISMATCH
 *         (mask_capacity < P while the file holds a mask).
 */
BDL_API bdl_status bdl_model_load(const char *path, bdl_model **out_model, double *out_mask,
                                  int64_t mask_capacity, int32_t *out_has_mask);

/* ---------------------------------------------------------------------------------------------
 * Model selection: the stochastic NTK lower bound on the Laplace evidence (Immer et al. 2023,
 * "Stochastic marginal likelihood gradients using neural tangent kernels")
 *
 * The full-GGN Laplace evidence (see the Laplace section)
 *   E = log p(D|θ*) − ½ [log det P − log det P0] − ½ (θ* − μ0)ᵀ P0 (θ* − μ0),  P = h·G + P0,
 * written through Sylvester's identity with the n·C × n·C kernel instead of the P × P precision:
 *   log det P − log det P0 = log det(I + h·Sᵀ K S),  K = J P0⁻¹ Jᵀ,  S Sᵀ = Λ (the per-example
 *   output Hessian at σ = 1: I for regression, diag(p) − p pᵀ for classification).
 * With δ constant on each parameter tensor, K = Σ_t K_t/δ_t, and each K_t is built from its
 * layer's inputs and backpropagated output vectors (for a dense layer the Hadamard product of the
 * input and output-gradient Grams), never from a Jacobian with a column per parameter.
 * The examples are put in a seeded random order (optionally sorted by label) and cut into batches
 * of B (the last one smaller when B does not divide n); keeping only the batches' diagonal blocks
 * gives, by Fischer's inequality, the lower bound
 *   E_B = log p(D|θ*) − ½ Σ_b log det(I + h·S_bᵀ K_bb S_b) − ½ (θ* − μ0)ᵀ P0 (θ* − μ0) ≤ E,
 * equal to E when one batch holds all the data. The stochastic estimate from batch b alone,
 *   Ê_b = n_B·[log p(D_b|θ*) − ½ log det(I + h·S_bᵀ K_bb S_b)] − ½ (θ* − μ0)ᵀ P0 (θ* − μ0),
 * n_B the number of batches (= n/B for equal batches), averages to E_B over the batches.
 * Independent outputs (the paper's cheaper variant) replace Λ by its diagonal p(1 − p) (1 for
 * regression) and drop the kernel's cross-output blocks: C kernels of B × B per batch. That is an
 * approximation, not a bound (on the library's test models 0.9–24 % below E); it is exact for one
 * regression output. Gradients with respect to log δ_t:
 *   ½ h Σ_b tr(M_b⁻¹ S_bᵀ K_{t,bb} S_b)/δ_t − ½ δ_t ‖θ*_t − μ0_t‖²,  M_b = I + h·S_bᵀ K_bb S_b,
 * and with respect to log σ (regression): 2h·L − n·C + h Σ_b tr(M_b⁻¹ S_bᵀ K_bb S_b).
 * ------------------------------------------------------------------------------------------- */

/** Options and hyperparameters of bdl_ntk_evidence_bound; fill with bdl_ntk_bound_params_init. */
typedef struct bdl_ntk_bound_params {
  uint32_t struct_size;           /**< set by the init function */
  int32_t likelihood;             /**< BDL_LIKELIHOOD_*; default classification */
  const double *prior_precision;  /**< δ > 0: 1 value (scalar) or one per parameter tensor in
                                       parameter-vector order (W₀, b₀, W₁, b₁, …); NULL: 1. One
                                       value per parameter does not factor into per-tensor kernels
                                       and is BDL_UNSUPPORTED */
  int64_t prior_precision_count;
  const double *prior_mean;       /**< μ0: 1 value or one per parameter; NULL: 0 */
  int64_t prior_mean_count;
  double sigma_noise;             /**< σ > 0 (regression); default 1 */
  double temperature;             /**< T > 0; default 1 */
  int64_t batch_size;             /**< B ≥ 1 examples per batch (B ≥ n: one batch); 0, the
                                       default: one batch, so the value is the exact evidence.
                                       Memory per batch ≈ (tensors + 3)·(B·C)² doubles */
  int32_t independent_outputs;    /**< 1: the independent-outputs variant; default 0 (the bound) */
  int32_t group_by_class;         /**< 1: sort the examples by label before cutting batches
                                       (classification only), which tightens the bound; default 0 */
  uint64_t seed;                  /**< seeds the random order of the examples; default 0 */
  int64_t batch_index;            /**< −1, the default: E_B over all batches; b in [0, n_B): the
                                       stochastic estimate Ê_b from batch b alone */
  int64_t output_index;           /**< −1, the default: every output; c in [0, C) (needs
                                       independent_outputs and batch_index ≥ 0): the estimate from
                                       output c of batch b alone, its log-determinant scaled by C */
} bdl_ntk_bound_params;

/** Fills `params` with the defaults above. */
BDL_API bdl_status bdl_ntk_bound_params_init(bdl_ntk_bound_params *params);

/**
 * The NTK bound E_B (or the estimate Ê_b, see params->batch_index) of the model at its current
 * parameters θ* on (X, y), and its gradient. With the default params->batch_size it equals
 * bdl_laplace_log_marginal_likelihood of a BDL_LAPLACE_FULL posterior fitted by bdl_laplace_fit at
 * the same hyperparameters (to rounding), at O((n·C)³) instead of O(P³) cost.
 * @param model  any network whose parametric layers are Linear or Conv2d
 * @param X, n   n ≥ 1 inputs, (n, input shape…) row-major
 * @param y      labels or targets as for bdl_model_loss_gradient
 * @param params options and hyperparameters (NULL: the defaults)
 * @param[out] out_value           the value (may be NULL)
 * @param[out] out_grad_log_prior  ∂/∂log δ, params->prior_precision_count doubles (1 when
 *                                 prior_precision is NULL); may be NULL
 * @param[out] out_grad_log_sigma  ∂/∂log σ (0 for classification); may be NULL
 * @param[out] out_num_batches     n_B = ⌈n/B⌉; may be NULL
 * @return BDL_OK; BDL_INVALID_ARGUMENT (NULL model, X or y; n < 1; a params field out of range:
 *         likelihood, flags not 0/1, batch_size < 0, batch_index or output_index outside its
 *         range, output_index without independent_outputs; labels outside [0, C); δ ≤ 0, σ ≤ 0,
 *         T ≤ 0; group_by_class for regression); BDL_SHAPE_MISMATCH (prior length neither 1 nor
 *         one per parameter tensor, prior mean length neither 1 nor P); BDL_NON_FINITE_INPUT (NaN
 *         or Inf in X, y or the hyperparameters); BDL_UNSUPPORTED (one prior value per
 *         parameter); BDL_OUT_OF_MEMORY (a batch's kernels do not fit: use a smaller batch_size).
 * The model is only read.
 */
BDL_API bdl_status bdl_ntk_evidence_bound(const bdl_model *model, const double *X, int64_t n,
                                          const double *y, const bdl_ntk_bound_params *params,
                                          double *out_value, double *out_grad_log_prior,
                                          double *out_grad_log_sigma, int64_t *out_num_batches);

#ifdef __cplusplus
}
#endif

#endif /* BDLCORE_H */
