import numpy as np
import bdlcore

# A Kronecker-factored posterior precision P = h·B⊗A + δI for one layer.
B = np.array([[2.0, 0.5], [0.5, 1.0]])                               # output-gradient factor
A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.2], [0.0, 0.2, 1.0]])   # input-activation factor
print("log det P =", bdlcore.kron_logdet(B, A, scale=1.0, delta=0.1))
print("diag(P^-1) =", bdlcore.kron_diagonal(B, A, scale=1.0, delta=0.1, exponent=-1.0))

# Eigendecompose once, then vary the prior precision freely.
with bdlcore.KronFactor(B, A) as P:
    for delta in (0.01, 0.1, 1.0):
        print(f"delta={delta}: log det = {P.logdet(scale=1.0, delta=delta):.6f}")
    X = np.ones((2, 3))
    Y = P.solve(X, scale=1.0, delta=0.1)                             # P⁻¹ vec(X), shape (2, 3)

# Errors are exceptions carrying the library's message.
try:
    bdlcore.kron_logdet(B, np.array([[1.0, 2.0], [2.0, 1.0]]))
except bdlcore.NotPositiveDefiniteError as error:
    print("rejected:", error)
print(bdlcore.blas_info().core)

# A network in PyTorch's parameter layout, trained on the shipped digits.
X_train, y_train, X_test, y_test = bdlcore.datasets.load_digits()
with bdlcore.Sequential([bdlcore.Linear(64, 128), bdlcore.ReLU(), bdlcore.Linear(128, 10)], seed=0) as net:
    net.fit(X_train / 16, y_train, epochs=30, lr=3e-3, schedule="cosine", prior_precision=1e-4, progress=False)
    accuracy = (net(X_test / 16).argmax(axis=1) == y_test).mean()
    print(f"test accuracy {accuracy:.3f} with {net.num_parameters} parameters")
    # Per-layer inputs a (N, R, d_in) and output-gradients g (N, K, R, d_out): K-FAC's raw material.
    for layer, a, g in net.backward_vectors(X_test[:5] / 16, np.ones((5, 1, 10))):
        print(f"layer {layer}: a {a.shape}, g {g.shape}")
    # K-FAC of the trained network: per-layer factors and the exact damped log-determinant.
    with bdlcore.KFAC(net, X_train / 16, y_train, approx="expand", fisher="exact") as kfac:
        B, A = kfac.factors(0)                      # (128, 128) and (64, 64)
        print("log det(G + I) =", kfac.logdet(damping=1.0), "trace", kfac.trace())
    # A K-FAC Laplace posterior: the evidence, its optimal per-tensor prior, calibrated predictions.
    with bdlcore.Laplace(net, likelihood="classification", structure="kron") as la:
        la.fit(X_train / 16, y_train, progress=False)
        optimum = la.optimize_prior_precision(prior_structure="layerwise")
        print(f"log evidence {optimum.log_marginal_likelihood:.2f} at prior precisions {la.prior_precision.round(2)}")
        probs = la.predict(X_test / 16, link="probit")
        print(f"Laplace test NLL {bdlcore.metrics.nll(probs, y_test):.3f}, ECE {bdlcore.metrics.ece(probs, y_test):.3f}")
    # Influence: which training digits moved the loss of the first test images (EK-FAC).
    with bdlcore.Influence(net, X_train / 16, y_train, curvature="ekfac", progress=False) as influence:
        helpful, harmful = influence.top_k(X_test[:3] / 16, y_test[:3], k=5)
        print("most helpful training images for test image 0:", helpful[0], "labels", y_train[helpful[0]])

# Model selection and pruning (SpaM): train a fresh network and one prior precision per parameter
# by the evidence — no validation set — then prune 90% of its weights by optimal posterior damage.
with bdlcore.Sequential([bdlcore.Linear(64, 128), bdlcore.ReLU(), bdlcore.Linear(128, 10)], seed=0) as net:
    result = bdlcore.train_marglik(net, X_train / 16, y_train, prior_structure="diag", epochs=30, lr=3e-3,
                                   schedule="cosine", marglik_frequency=5, burnin=5, progress=False)
    with result.laplace as la:
        scores = bdlcore.pruning.scores(la, "opd")  # P_ii·θ_i², P the posterior precision
    curve = bdlcore.pruning.sparsity_curve(net, scores, X_test / 16, y_test, sparsities=[0.5, 0.9])
    print(f"log evidence {result.history[-1]['log_marglik']:.1f}; pruned test accuracy {curve.accuracy.round(3)} at 50% / 90%")
