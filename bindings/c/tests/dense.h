/* Dense reference computations for the C tests: small, naive and independent of bdlcore. */
#ifndef BDL_C_DENSE_H
#define BDL_C_DENSE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* A deterministic generator (SplitMix64) and normal draws (Box–Muller). */
static uint64_t rng_state = 12345;
static inline double uniform01(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}
static inline double normal01(void) {
  return sqrt(-2 * log(uniform01())) * cos(2 * 3.14159265358979323846 * uniform01());
}

/* S = G·Gᵀ + ridge·I with G n × rank normal: symmetric PSD of rank min(n, rank) (ridge 0). */
static inline void random_spd(double *s, int n, int rank, double ridge) {
  double *g = malloc(sizeof(double) * (size_t)(n * rank));
  for (int i = 0; i < n * rank; ++i) g[i] = normal01();
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double sum = i == j ? ridge : 0;
      for (int k = 0; k < rank; ++k) sum += g[i * rank + k] * g[j * rank + k];
      s[i * n + j] = sum;
    }
  free(g);
}

/* M = h·B⊗A + δI, entry ((i,j),(k,l)) = h·B_ik·A_jl + δ·[i=k][j=l]. */
static inline void dense_kron(double *m, const double *b, int nb, const double *a, int na, double h,
                       double delta) {
  int n = nb * na;
  for (int i = 0; i < nb; ++i)
    for (int j = 0; j < na; ++j)
      for (int k = 0; k < nb; ++k)
        for (int l = 0; l < na; ++l) {
          int r = i * na + j, c = k * na + l;
          m[r * n + c] = h * b[i * nb + k] * a[j * na + l] + (r == c ? delta : 0);
        }
}

/* In-place Cholesky (lower); returns log det, or NAN if not positive definite. */
static inline double cholesky_logdet(double *m, int n) {
  double logdet = 0;
  for (int j = 0; j < n; ++j) {
    double d = m[j * n + j];
    for (int k = 0; k < j; ++k) d -= m[j * n + k] * m[j * n + k];
    if (d <= 0) return NAN;
    d = sqrt(d);
    m[j * n + j] = d;
    logdet += 2 * log(d);
    for (int i = j + 1; i < n; ++i) {
      double s = m[i * n + j];
      for (int k = 0; k < j; ++k) s -= m[i * n + k] * m[j * n + k];
      m[i * n + j] = s / d;
    }
  }
  return logdet;
}

/* y = M x for an n × n matrix. */
static inline void matvec(const double *m, const double *x, double *y, int n) {
  for (int i = 0; i < n; ++i) {
    double s = 0;
    for (int j = 0; j < n; ++j) s += m[i * n + j] * x[j];
    y[i] = s;
  }
}

/* diag(M⁻¹)_i = ‖L⁻¹e_i‖² from the lower Cholesky factor L (as left by cholesky_logdet). */
static inline void inverse_diagonal(const double *l, double *out, int n) {
  double *w = malloc(sizeof(double) * (size_t)n);
  for (int i = 0; i < n; ++i) {
    double norm = 0;
    for (int r = 0; r < n; ++r) {
      double s = r == i ? 1 : 0;
      for (int k = 0; k < r; ++k) s -= l[r * n + k] * w[k];
      w[r] = s / l[r * n + r];
      norm += w[r] * w[r];
    }
    out[i] = norm;
  }
  free(w);
}

#endif
