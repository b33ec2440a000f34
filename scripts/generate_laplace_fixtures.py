"""Generate the Laplace reference fixtures for bdlcore from laplace-torch.

Writes one ``.npz`` file per small model into ``Tests/Fixtures/laplace/`` (plus a README.md
describing them). Each file holds the model (spec, parameters), the data and the outputs in
the same format as the engine and K-FAC fixtures, test inputs ``X_test``, and what
laplace-torch 0.3 returns for its six parametric classes (``FullLaplace``, ``DiagLaplace``,
``KronLaplace`` and their last-layer versions ``FullLLLaplace``, ``DiagLLLaplace``,
``KronLLLaplace``): the log marginal likelihood for several hyperparameter cases, the GLM
predictive (mean, functional covariance, probit, Laplace bridge) and the result of its marginal-likelihood
prior-precision optimisation with its default settings. No curvature matrices are stored.
The Swift tests read these files; CI never needs PyTorch.

Every Laplace object is built fresh (on a deep copy of the model) and fitted on one full
batch: ``DataLoader(TensorDataset(X, y), batch_size=N, shuffle=False)``. The backend is
laplace-torch's default (``backend=None`` → ``CurvlinopsGGN``), which gives DESIGN.md §4's
exact type-2 curvature summed over the data for all three structures:
- full: curvlinops ``GGNLinearOperator`` materialised against the identity, Σ Jᵀ Λ J;
- diag: ``GGNInterface.diag`` (torch.func Jacobians), the exact diagonal of that GGN — not a
  Monte-Carlo estimate, so no other backend is needed;
- kron: curvlinops ``KFACLinearOperator`` with ``FisherType.TYPE2``, ``kfac_approx='expand'``,
  ``separate_weight_and_bias=True``: weight block B ⊗ A (row-major vec), bias block B.
laplace-torch's losses are CrossEntropyLoss(reduction='sum') and MSELoss(reduction='sum')
times ``factor`` = ½ for regression; it applies ½ to a Kronecker pair as √½ on each factor,
so its regression weight factors are B = √2·B_bdlcore and A = A_bdlcore/√2 (the product and
the bias block B are bdlcore's). That split does not matter for the undamped posterior but
does for the damped form (√h B + √δ I) ⊗ (√h A + √δ I).

``damping=True`` is effectively a no-op in laplace-torch 0.3: ``KronDecomposed.__mul__`` and
``__add__`` drop the flag, so ``la.posterior_precision = la.H * h + prior`` is undamped, and
``KronLLLaplace`` even resets ``la.damping`` to False in ``__init__``. The ``kron_damped`` case
stores what ``log_marginal_likelihood`` really returns (checked against the UNDAMPED
reference); ``kron_damped_form`` stores the evidence assembled from laplace-torch's own damped
``KronDecomposed(..., damping=True).logdet()`` (checked against the dense damped reference).

Before writing, the script recomputes in plain torch, independently of laplace-torch:
- the exact GGN G = Σ_n J_nᵀ Λ_n J_n from ``fixture_common.full_jacobian`` (Λ = diag(p) − p pᵀ
  or I at σ = 1) and asserts that laplace-torch's full H equals G, its diag H equals diag G and
  its Kronecker factors equal the K-FAC factors of DESIGN.md §4 computed with the helpers of
  ``generate_kfac_fixtures.py`` (with the √2 / 1/√2 split for regression); for the last
  layer the same restricted to the last layer's parameters (the trailing block of θ);
- every stored evidence from DESIGN.md §4's formula with the dense posterior precision
  P = h·G̃ + P0 (G̃ = G, diag G or the dense Kronecker block matrix; h = 1/(σ²T)):
  log p(D|θ*) − ½[log det P − log det P0] − ½(θ*−μ0)ᵀP0(θ*−μ0), asserted to rtol 1e-10;
- every stored functional covariance as J(x) P⁻¹ J(x)ᵀ, the probit as
  softmax(f / √(1 + π/8·diag Σ_f)), and the bridge against ``laplace_bridge`` below.

Requirements: torch, numpy, laplace-torch 0.3 and curvlinops (PyPI
``curvlinops-for-pytorch``) 3.0.1, in a separate virtualenv (``.venv*/`` is gitignored).
From the repository root::

    python3 -m venv .venv-fixtures
    .venv-fixtures/bin/pip install torch numpy curvlinops-for-pytorch==3.0.1 laplace-torch==0.3
    .venv-fixtures/bin/python scripts/generate_laplace_fixtures.py

Deterministic: seeded ``torch.Generator`` per model (parameters, then X, y, then X_test, then
the random prior precisions), float64, one thread, fixed ZIP timestamps, no compression. The
seeding, data draws, Jacobian and ``.npz`` writer come from ``fixture_common.py``; the plain
torch K-FAC reference from ``generate_kfac_fixtures.py``.
"""

from __future__ import annotations

import copy
import importlib.metadata
import inspect
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fixture_common.py, run as a script

from fixture_common import (  # noqa: E402
    REPO_ROOT, assert_close, base_arrays, configure_torch, draw_data, full_jacobian,
    readme_file_section, seeded_model, write_fixture)
from generate_kfac_fixtures import (  # noqa: E402  (plain-torch K-FAC reference)
    dense_blocks, layer_quantities, output_vectors, reference_factors)

# torch 2.15 warns on every torch.jit.script call made inside curvlinops/backpack code paths.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)

from laplace import (  # noqa: E402
    DiagLaplace, DiagLLLaplace, FullLaplace, FullLLLaplace, KronLaplace, KronLLLaplace)
from laplace.baselaplace import BaseLaplace, ParametricLaplace  # noqa: E402
from laplace.utils.matrix import KronDecomposed  # noqa: E402

OUT_DIR_REL = "Tests/Fixtures/laplace"
OUT_DIR = REPO_ROOT / OUT_DIR_REL

MAX_FILE_BYTES = 500_000
N_TEST = 5

# float64, tiny models: laplace-torch and the dense reference agree to ~1e-14 relative.
RTOL = 1e-10  # evidence (relative), curvature, predictive
ATOL = 1e-10

LAPLACE_VERSION = importlib.metadata.version("laplace-torch")
CURVLINOPS_VERSION = importlib.metadata.version("curvlinops-for-pytorch")

STRUCTURES = ["full", "diag", "kron"]
SUBSETS = ["all", "last_layer"]
CLASSES = {
    ("full", "all"): FullLaplace, ("diag", "all"): DiagLaplace, ("kron", "all"): KronLaplace,
    ("full", "last_layer"): FullLLLaplace, ("diag", "last_layer"): DiagLLLaplace,
    ("kron", "last_layer"): KronLLLaplace,
}
CASES = ["scalar_a", "scalar_b", "layerwise", "diag", "temperature", "prior_mean", "kron_damped",
         "kron_damped_form"]
PRIOR_STRUCTURES = ["scalar", "layerwise"]

OPT_SIG = inspect.signature(ParametricLaplace.optimize_prior_precision).parameters
OPT_DEFAULTS = {k: OPT_SIG[k].default for k in ("n_steps", "lr", "init_prior_prec")}
BASE_OPT_PRIOR_STRUCTURE = str(inspect.signature(
    BaseLaplace.optimize_prior_precision).parameters["prior_structure"].default.value)
PARAM_OPT_PRIOR_STRUCTURE = str(OPT_SIG["prior_structure"].default.value)


def build_models() -> list[dict]:
    """Model definitions: name, seed, module, per-example input shape, likelihood, N."""
    return [
        dict(name="mlp_classification", seed=3001, likelihood="classification", n=20,
             input_shape=(6,),
             model=lambda: nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))),
        dict(name="mlp_regression", seed=3002, likelihood="regression", n=16,
             input_shape=(5,),
             model=lambda: nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))),
        # input 2x5x5 -> conv (k3, p1) 3x5x5 -> flatten 75 -> Linear(75, 4)
        dict(name="cnn_classification", seed=3003, likelihood="classification", n=8,
             input_shape=(2, 5, 5),
             model=lambda: nn.Sequential(
                 nn.Conv2d(2, 3, kernel_size=3, stride=1, padding=1), nn.ReLU(),
                 nn.Flatten(), nn.Linear(75, 4))),
    ]


def hyperparameters(likelihood: str, layerwise: torch.Tensor, diag: torch.Tensor) -> dict:
    """Per case: prior precision (all-subset form), σ, T, prior mean, constructor extras."""
    reg = likelihood == "regression"
    sa, sb = (0.7, 1.3) if reg else (1.0, 1.0)

    def case(prec, sigma=sa, temperature=1.0, mean=0.0, **extra):
        return dict(prior_precision=torch.as_tensor(prec, dtype=torch.float64).reshape(-1),
                    sigma_noise=sigma, temperature=temperature, prior_mean=mean, extra=extra)

    return {
        "scalar_a": case([0.5]),
        "scalar_b": case([3.0], sigma=sb),
        "layerwise": case(layerwise),
        "diag": case(diag),
        "temperature": case([1.5], temperature=2.0),
        "prior_mean": case([1.5], mean=0.3),
        "kron_damped": case([1.5], damping=True),
        "kron_damped_form": case([1.5], damping=True),
    }


# ----------------------------------------------------------------------------------------
# Independent reference (plain torch, DESIGN.md §4)
# ----------------------------------------------------------------------------------------

class Reference:
    """Exact GGN, K-FAC blocks and the dense evidence / predictive of DESIGN.md §4."""

    def __init__(self, defn, model, theta, X, y, outputs, X_test):
        self.likelihood, self.n = defn["likelihood"], defn["n"]
        self.X, self.y, self.outputs = X, y, outputs
        self.theta = theta
        C = outputs.shape[-1]
        self.C = C
        J = full_jacobian(model, X, theta)  # (N, C, P)
        if self.likelihood == "classification":
            p = torch.softmax(outputs, dim=-1)
            lam = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
        else:
            lam = torch.eye(C).expand(self.n, C, C)
        self.G = torch.einsum("ncp,ncd,ndq->pq", J, lam, J)
        self.J_test = full_jacobian(model, X_test, theta)
        with torch.no_grad():
            self.f_test = model(X_test)

        self.layer_idxs = [i for i, m in enumerate(model) if isinstance(m, (nn.Linear, nn.Conv2d))]
        self.last_idx = self.layer_idxs[-1]
        self.tensor_sizes = [p.numel() for p in model.parameters()]
        n_last = sum(p.numel() for p in model[self.last_idx].parameters())
        self.ll_start = theta.numel() - n_last
        self.n_tensors = {"all": len(self.tensor_sizes),
                          "last_layer": len(list(model[self.last_idx].parameters()))}

        vecs = output_vectors(outputs, y, self.likelihood, "exact")  # columns of S (σ = 1)
        self.factors = {}
        for i in self.layer_idxs:
            a, dz = layer_quantities(model, X, i)
            g = torch.einsum("nck,ncro->nkro", vecs, dz)
            self.factors[i] = reference_factors(a, g, "expand")
        # laplace-torch's per-factor split of its ½ (regression): B·√2, A/√2.
        self.split = (math.sqrt(2.0), 1 / math.sqrt(2.0)) if self.likelihood == "regression" \
            else (1.0, 1.0)
        self.kron_dense = {
            "all": dense_blocks(model, self.factors),
            "last_layer": dense_blocks(model, {self.last_idx: self.factors[self.last_idx]}),
        }
        self.has_bias = {i: model[i].bias is not None for i in self.layer_idxs}

    def sl(self, subset: str) -> slice:
        return slice(0, self.theta.numel()) if subset == "all" else slice(self.ll_start, None)

    def sizes(self, subset: str) -> list[int]:
        return self.tensor_sizes if subset == "all" else self.tensor_sizes[-self.n_tensors[subset]:]

    def curvature(self, structure: str, subset: str) -> torch.Tensor:
        s = self.sl(subset)
        if structure == "full":
            return self.G[s, s]
        if structure == "diag":
            return torch.diag(torch.diagonal(self.G[s, s]))
        return self.kron_dense[subset]

    def expand_prior(self, prec: torch.Tensor, subset: str) -> torch.Tensor:
        sizes = self.sizes(subset)
        if prec.numel() == 1:
            return prec.expand(sum(sizes))
        if prec.numel() == len(sizes):
            return torch.repeat_interleave(prec, torch.tensor(sizes))
        assert prec.numel() == sum(sizes)
        return prec

    def precision(self, structure, subset, prec, h, damping=False) -> torch.Tensor:
        """Dense posterior precision P (differentiable in prec)."""
        p0 = self.expand_prior(prec, subset)
        if not damping:
            return h * self.curvature(structure, subset) + torch.diag(p0)
        assert structure == "kron"
        n_t = self.n_tensors[subset]
        deltas = prec.expand(n_t) if prec.numel() == 1 else prec
        assert deltas.numel() == n_t
        sB, sA = self.split
        idxs = self.layer_idxs if subset == "all" else [self.last_idx]
        blocks, t = [], 0
        rh = math.sqrt(h)
        for i in idxs:
            A, B = self.factors[i]
            rd = deltas[t].sqrt()
            blocks.append(torch.kron(rh * sB * B + rd * torch.eye(len(B)),
                                     rh * sA * A + rd * torch.eye(len(A))))
            t += 1
            if self.has_bias[i]:
                blocks.append(h * B + deltas[t] * torch.eye(len(B)))
                t += 1
        assert t == n_t
        return torch.block_diag(*blocks)

    def log_lik(self, sigma: float, temperature: float) -> torch.Tensor:
        f, y = self.outputs, self.y
        if self.likelihood == "classification":
            return -nn.CrossEntropyLoss(reduction="sum")(f, y) / temperature
        sse = ((f - y) ** 2).sum()
        return (-0.5 * sse / (sigma ** 2 * temperature)
                - self.n * self.C * math.log(sigma * math.sqrt(2 * math.pi)))

    def lml(self, structure, subset, prec, sigma, temperature, mean, damping=False):
        h = 1.0 / (sigma ** 2 * temperature)
        P = self.precision(structure, subset, prec, h, damping)
        p0 = self.expand_prior(prec, subset)
        logdet_P = 2 * torch.log(torch.diagonal(torch.linalg.cholesky(P))).sum()
        d = self.theta[self.sl(subset)] - mean
        return (self.log_lik(sigma, temperature) - 0.5 * (logdet_P - torch.log(p0).sum())
                - 0.5 * (d * p0) @ d)

    def predictive(self, structure, subset, prec, sigma):
        P = self.precision(structure, subset, prec, 1.0 / sigma ** 2)
        Js = self.J_test[:, :, self.sl(subset)]  # (M, C, P_subset)
        Z = torch.linalg.solve(P, Js.reshape(-1, Js.shape[2]).T).T.reshape(Js.shape)
        f_var = Js @ Z.transpose(1, 2)  # J P⁻¹ Jᵀ per input
        kappa = 1 / torch.sqrt(1 + math.pi / 8 * torch.diagonal(f_var, dim1=1, dim2=2))
        return self.f_test, f_var, torch.softmax(kappa * self.f_test, dim=-1), laplace_bridge(self.f_test, f_var)


def laplace_bridge(f_mu, f_var):
    """The Laplace bridge's Dirichlet mean (Hobbhahn et al. 2022), written out independently:
    zero-mean correction f ← f − Σ1·(1ᵀf)/(1ᵀΣ1), Σ ← Σ − Σ11ᵀΣ/(1ᵀΣ1), then
    α_c = (1 − 2/C + e^{f_c}/C²·Σ_k e^{−f_k})/Σ_cc and p = α/Σα."""
    row = f_var.sum(-1)  # Σ1 per input, (M, C)
    total = row.sum(-1, keepdim=True)  # 1ᵀΣ1, (M, 1)
    f = f_mu - row * f_mu.sum(-1, keepdim=True) / total
    var = f_var - row[:, :, None] * row[:, None, :] / total[:, :, None]
    C = f.shape[-1]
    alpha = (1 - 2 / C + f.exp() / C ** 2 * (-f).exp().sum(-1, keepdim=True)) / torch.diagonal(var, dim1=1, dim2=2)
    return alpha / alpha.sum(-1, keepdim=True)


# ----------------------------------------------------------------------------------------

def fmt(v) -> str:
    if isinstance(v, torch.Tensor):
        if v.ndim == 0:
            return f"torch.tensor({v.item()!r})"
        vals = ", ".join(repr(x) for x in v.tolist()) if v.numel() <= 6 else \
            f"<{v.numel()} values, see hp key>"
        return f"torch.tensor([{vals}])"
    return repr(v)


class Runner:
    """Builds, fits and calls laplace-torch objects, recording calls, warnings and errors."""

    def __init__(self, defn, model, X, y, last_layer_name):
        self.defn, self.model, self.lik = defn, model, defn["likelihood"]
        self.loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y),
                                                  batch_size=defn["n"], shuffle=False)
        self.last_layer_name = last_layer_name
        self.calls: dict[str, str] = {}
        self.warnings: dict[str, list[str]] = {}  # message -> call names
        self.unsupported: dict[str, str] = {}

    def build(self, structure, subset, **kw):
        cls = CLASSES[(structure, subset)]
        if subset == "last_layer":
            kw["last_layer_name"] = self.last_layer_name
        la = cls(copy.deepcopy(self.model), self.lik, **kw)
        la.fit(self.loader)
        args = "".join(f", {k}={fmt(v)}" for k, v in kw.items())
        return la, f"la = {cls.__name__}(model, {self.lik!r}{args}); la.fit(loader)"

    def run(self, key: str, fn):
        """Call fn() -> (value, call string), recording warnings; None if laplace-torch raises."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")
            try:
                value, call = fn()
            except (ValueError, RuntimeError) as err:
                self.unsupported[key] = f"{type(err).__name__}: {err}"
                return None
        self.calls[key] = call
        for msg in sorted({f"{w.category.__name__}: {w.message}" for w in caught}):
            self.warnings.setdefault(msg, []).append(key)
        return value


def generate(defn: dict, report: dict) -> dict[str, np.ndarray]:
    name, lik, n = defn["name"], defn["likelihood"], defn["n"]
    gen, model, spec, theta = seeded_model(defn)
    X, outputs, y = draw_data(defn, model, gen)
    X_test = torch.randn((N_TEST, *defn["input_shape"]), generator=gen)
    ref = Reference(defn, model, theta, X, y, outputs, X_test)
    P = theta.numel()
    layerwise = torch.rand(ref.n_tensors["all"], generator=gen) * 2.7 + 0.3
    diag = torch.rand(P, generator=gen) * 2.7 + 0.3
    hps = hyperparameters(lik, layerwise, diag)
    last_layer_name = [nm for nm, m in model.named_modules() if m is model[ref.last_idx]][0]
    runner = Runner(defn, model, X, y, last_layer_name)
    reg = lik == "regression"

    arrays = base_arrays(defn, spec, theta, X, y, outputs,
                         {"laplace_version": LAPLACE_VERSION,
                          "curvlinops_version": CURVLINOPS_VERSION})
    arrays["X_test"] = X_test.numpy().copy()
    arrays["last_layer_name"] = np.array(last_layer_name)
    arrays["last_layer_slice"] = np.array([ref.ll_start, P], dtype=np.int64)
    for case in CASES:
        hp = hps[case]
        arrays[f"hp__{case}__prior_precision"] = hp["prior_precision"].numpy().copy()
        arrays[f"hp__{case}__sigma_noise"] = np.array(hp["sigma_noise"], dtype=np.float64)
        arrays[f"hp__{case}__temperature"] = np.array(hp["temperature"], dtype=np.float64)
        arrays[f"hp__{case}__prior_mean"] = np.array(hp["prior_mean"], dtype=np.float64)

    errs = {"curvature": 0.0, "lml_rel": 0.0, "predictive": 0.0, "opt_lml_rel": 0.0,
            "opt_grad": 0.0}

    def check_lml(value, structure, subset, prec, sigma, temperature, mean, damping, what,
                  kind="lml_rel"):
        r = ref.lml(structure, subset, prec, sigma, temperature, mean, damping).item()
        rel = abs(value - r) / abs(r)
        assert rel <= RTOL, f"{name}/{what}: laplace-torch {value!r} vs reference {r!r}"
        errs[kind] = max(errs[kind], rel)

    # --- curvature of every (structure, subset): laplace-torch's H vs the reference ------
    for structure in STRUCTURES:
        for subset in SUBSETS:
            la, _ = runner.build(structure, subset)
            what = f"{name}/{structure}/{subset}"
            expect = ref.curvature(structure, subset)
            if structure == "full":
                got = la.H
            elif structure == "diag":
                got = torch.diag(la.H)
            else:
                kfacs, idxs = la.H_facs.kfacs, (ref.layer_idxs if subset == "all"
                                                else [ref.last_idx])
                assert len(kfacs) == ref.n_tensors[subset], what
                sB, sA = ref.split
                pos, blocks = 0, []
                for i in idxs:
                    A_r, B_r = ref.factors[i]
                    B_la, A_la = kfacs[pos]
                    errs["curvature"] = max(
                        errs["curvature"],
                        assert_close(B_la, sB * B_r, f"{what}: B_{i}", rtol=RTOL, atol=ATOL),
                        assert_close(A_la, sA * A_r, f"{what}: A_{i}", rtol=RTOL, atol=ATOL))
                    blocks.append(torch.kron(B_la, A_la))
                    pos += 1
                    if ref.has_bias[i]:
                        (Bb,) = kfacs[pos]
                        assert_close(Bb, B_r, f"{what}: bias B_{i}", rtol=RTOL, atol=ATOL)
                        blocks.append(Bb)
                        pos += 1
                got = torch.block_diag(*blocks)
            errs["curvature"] = max(errs["curvature"], assert_close(
                got, expect, f"{what}: curvature", rtol=RTOL, atol=ATOL))

    # --- evidence for every (structure, subset, case), predictive at scalar_a ------------
    for structure in STRUCTURES:
        for subset in SUBSETS:
            for case in CASES:
                hp = hps[case]
                if hp["extra"].get("damping", False) and structure != "kron":
                    continue
                # laplace-torch drops the damping flag (see README): kron_damped is its
                # undamped evidence; kron_damped_form evaluates its damped KronDecomposed.
                damping = case == "kron_damped_form"
                prec = hp["prior_precision"]
                if subset == "last_layer" and prec.numel() > 1:
                    # the last layer's tensors/parameters are the trailing entries
                    prec = prec[-ref.n_tensors[subset]:] if case == "layerwise" \
                        else prec[ref.ll_start:]
                kw = dict(hp["extra"])
                if hp["temperature"] != 1.0:
                    kw["temperature"] = hp["temperature"]
                if hp["prior_mean"] != 0.0:
                    kw["prior_mean"] = hp["prior_mean"]
                key = f"lml__{structure}__{subset}__{case}"

                def evidence(structure=structure, subset=subset, prec=prec, hp=hp, kw=kw):
                    la, call = runner.build(structure, subset, **kw)
                    lml_kw = {"prior_precision": prec.clone()}
                    if reg:  # laplace-torch raises on sigma_noise for classification
                        lml_kw["sigma_noise"] = torch.tensor(hp["sigma_noise"])
                    value = la.log_marginal_likelihood(**lml_kw).item()
                    args = ", ".join(f"{k}={fmt(v)}" for k, v in lml_kw.items())
                    call = f"{call}; la.log_marginal_likelihood({args})"
                    if case == "kron_damped_form":
                        pp = la.posterior_precision  # KronDecomposed, damping flag lost
                        # KronLaplace keeps damping=True on la.H only; KronLLLaplace loses it
                        # in __init__ already (KronLaplace.__init__ resets it to False).
                        assert la.damping == la.H.damping == (subset == "all"), key
                        assert not pp.damping, key
                        damped = KronDecomposed(pp.eigenvectors, pp.eigenvalues, pp.deltas,
                                                damping=True)
                        value = (la.log_likelihood - 0.5 * (
                            damped.logdet() - la.log_det_prior_precision) - 0.5 * la.scatter
                        ).item()
                        call += ("; pp = la.posterior_precision; la.log_likelihood - 0.5 * "
                                 "(KronDecomposed(pp.eigenvectors, pp.eigenvalues, pp.deltas, "
                                 "damping=True).logdet() - la.log_det_prior_precision) - "
                                 "0.5 * la.scatter")
                    return (la, value), call

                out = runner.run(key, evidence)
                if out is None:
                    continue
                la, value = out
                check_lml(value, structure, subset, prec, hp["sigma_noise"], hp["temperature"],
                          hp["prior_mean"], damping, key)
                arrays[key] = np.array(value, dtype=np.float64)

                if case == "scalar_a":  # predictive with these hyperparameters
                    f_ref, v_ref, p_ref, b_ref = ref.predictive(structure, subset, prec,
                                                                hp["sigma_noise"])
                    sfx = f"{structure}__{subset}"
                    if reg:
                        f_mu, f_var = la(X_test, pred_type="glm")
                        runner.calls[f"predictive__{sfx}"] = (
                            f"{runner.calls[key]}; f_mu, f_var = la(X_test, pred_type='glm')")
                    else:
                        f_mu, f_var = la._glm_predictive_distribution(X_test)
                        probit = la(X_test, pred_type="glm", link_approx="probit")
                        bridge = la(X_test, pred_type="glm", link_approx="bridge")
                        runner.calls[f"predictive__{sfx}"] = (
                            f"{runner.calls[key]}; f_mu, f_var = "
                            "la._glm_predictive_distribution(X_test); probit = la(X_test, "
                            "pred_type='glm', link_approx='probit'); bridge = la(X_test, "
                            "pred_type='glm', link_approx='bridge')")
                    for nm, got, exp in [("f_mu", f_mu, f_ref), ("f_var", f_var, v_ref)] + (
                            [] if reg else [("probit", probit, p_ref), ("bridge", bridge, b_ref)]):
                        errs["predictive"] = max(errs["predictive"], assert_close(
                            got, exp, f"{name}/{nm}__{sfx}", rtol=RTOL, atol=ATOL))
                        arrays[f"{nm}__{sfx}"] = got.detach().numpy().copy()

    # --- prior-precision optimisation with laplace-torch's defaults ----------------------
    sigma_a = hps["scalar_a"]["sigma_noise"]
    for structure in STRUCTURES:
        for subset in SUBSETS:
            for ps in PRIOR_STRUCTURES:
                key = f"opt__{structure}__{subset}__{ps}"

                def optimise(structure=structure, subset=subset, ps=ps):
                    kw = {"sigma_noise": sigma_a} if reg else {}
                    la, call = runner.build(structure, subset, **kw)
                    la.optimize_prior_precision(method="marglik", pred_type="glm",
                                                prior_structure=ps)
                    prec = la.prior_precision.detach().clone()
                    value = la.log_marginal_likelihood().item()
                    return (prec, value), (
                        f"{call}; la.optimize_prior_precision(method='marglik', "
                        f"pred_type='glm', prior_structure={ps!r}); "
                        "la.prior_precision; la.log_marginal_likelihood()")

                out = runner.run(key, optimise)
                if out is None:
                    continue
                prec, value = out
                check_lml(value, structure, subset, prec, sigma_a, 1.0, 0.0, False, key,
                          kind="opt_lml_rel")
                log_prec = prec.log().requires_grad_(True)
                r = ref.lml(structure, subset, log_prec.exp(), sigma_a, 1.0, 0.0)
                (grad,) = torch.autograd.grad(r, log_prec)
                errs["opt_grad"] = max(errs["opt_grad"], grad.abs().max().item())
                arrays[f"{key}__prior_precision"] = prec.numpy().copy()
                arrays[f"{key}__lml"] = np.array(value, dtype=np.float64)

    calls = {
        "loader": f"DataLoader(TensorDataset(X, y), batch_size={n}, shuffle=False)",
        "model": "each Laplace gets copy.deepcopy(model); last-layer classes get "
                 f"last_layer_name={last_layer_name!r}",
        "backend": "default (backend=None -> CurvlinopsGGN): full = GGNLinearOperator @ I, "
                   "diag = GGNInterface.diag (exact GGN diagonal via torch.func Jacobians), "
                   "kron = KFACLinearOperator(fisher_type=TYPE2, kfac_approx='expand', "
                   "separate_weight_and_bias=True)",
        "optimize_prior_precision_defaults": {
            **{k: (v if not isinstance(v, torch.Tensor) else v.tolist())
               for k, v in OPT_DEFAULTS.items()},
            "optimizer": "torch.optim.Adam on log prior precision",
            "prior_structure_default_ParametricLaplace": PARAM_OPT_PRIOR_STRUCTURE,
            "prior_structure_default_BaseLaplace": BASE_OPT_PRIOR_STRUCTURE},
        "calls": runner.calls,
        "unsupported": runner.unsupported,
        "warnings": runner.warnings,
    }
    arrays["calls"] = np.array(json.dumps(calls, separators=(",", ":")))
    report[name] = {"errs": errs, "unsupported": dict(runner.unsupported),
                    "warnings": dict(runner.warnings), "n_last": P - ref.ll_start,
                    "n_tensors": ref.n_tensors}
    return arrays


# ----------------------------------------------------------------------------------------

def write_readme(results, sizes, report) -> None:
    o = OPT_DEFAULTS
    err_lines = []
    for name, r in report.items():
        e = r["errs"]
        err_lines.append(
            f"| `{name}` | {e['curvature']:.1e} | {e['lml_rel']:.1e} | {e['predictive']:.1e} "
            f"| {e['opt_lml_rel']:.1e} | {e['opt_grad']:.1e} |")
    unsupported = sorted({(k, v) for r in report.values() for k, v in r["unsupported"].items()})
    warn = sorted({m for r in report.values() for m in r["warnings"]})
    lines = [
        "# Laplace reference fixtures",
        "",
        "Log marginal likelihoods, GLM predictives and optimised prior precisions of small",
        f"models computed by laplace-torch {LAPLACE_VERSION} (`FullLaplace`, `DiagLaplace`,",
        "`KronLaplace`, `FullLLLaplace`, `DiagLLLaplace`, `KronLLLaplace`), each checked against",
        "an independent dense float64 evaluation of DESIGN.md §4, so that the Swift tests need",
        "no PyTorch. No curvature matrices are stored (the tests rebuild them from the model and",
        "data, or compare against `Tests/Fixtures/kfac/`).",
        "",
        f"Made by `scripts/generate_laplace_fixtures.py` with torch {torch.__version__},",
        f"laplace-torch {LAPLACE_VERSION} and curvlinops (PyPI `curvlinops-for-pytorch`)",
        f"{CURVLINOPS_VERSION} (also stored in each file). Do not edit by hand. To regenerate,",
        "from the repository root:",
        "",
        "```sh",
        "python3 -m venv .venv-fixtures",
        f".venv-fixtures/bin/pip install torch numpy curvlinops-for-pytorch=={CURVLINOPS_VERSION} "
        f"laplace-torch=={LAPLACE_VERSION}",
        ".venv-fixtures/bin/python scripts/generate_laplace_fixtures.py",
        "```",
        "",
        "The script is deterministic (seeded generators, float64, one thread, fixed ZIP",
        "timestamps; reruns are byte-identical).",
        "",
        "## Verification",
        "",
        "Before writing, the script asserts (rtol = atol = 1e-10; evidence: relative error",
        "≤ 1e-10) that, in plain torch and independently of laplace-torch,",
        "",
        "- laplace-torch's curvature is the exact type-2 GGN G = Σ_n J_nᵀ Λ_n J_n at σ = 1",
        "  (J from `fixture_common.full_jacobian`; Λ = diag(p) − p pᵀ, or I for regression):",
        "  full H = G, diag H = diag G, and its Kronecker factors equal DESIGN.md §4's K-FAC",
        "  expand factors (computed with `generate_kfac_fixtures.py`'s helpers); last layer: the",
        "  same restricted to the last layer's parameters;",
        "- every stored `lml__*` and `opt__*__lml` equals DESIGN.md §4's formula with the dense",
        "  posterior precision (the dense Kronecker block matrix for kron; for",
        "  `kron_damped_form` the damped blocks described below, with laplace-torch's factor",
        "  split for regression; for `kron_damped` the UNDAMPED blocks, see below);",
        "- every stored `f_var` equals J(x) P⁻¹ J(x)ᵀ, `f_mu` equals f(x; θ*) and `probit`",
        "  equals softmax(f / √(1 + π/8·diag f_var)).",
        "",
        "Largest deviations (curvature, predictive: max abs difference; evidence: max relative",
        "error). The last column is the largest |∂ lml / ∂ log prior precision| of the reference",
        "evidence at the stored optimisation results: laplace-torch's 100 Adam steps do not",
        "reach the exact optimum, so compare an exact optimiser's evidence and prior precision",
        "with `opt__*` loosely, or compare evidences at the stored `opt__*__prior_precision`.",
        "",
        "| file | curvature | lml (rel.) | predictive | opt lml (rel.) | opt max grad |",
        "| --- | --- | --- | --- | --- | --- |",
        *err_lines,
        "",
        "## Format",
        "",
        "Each `.npz` is an uncompressed (stored) ZIP archive of `.npy` version 1.0 entries,",
        "little-endian, C order, like the engine and K-FAC fixtures. String keys are 0-d numpy",
        "unicode arrays (dtype `<U…`, UTF-32LE). Scalars are 0-d float64 arrays.",
        "",
        "## Keys",
        "",
        "Common keys (same meaning as in `Tests/Fixtures/engine/` and `Tests/Fixtures/kfac/`):",
        "`spec`, `input_shape`, `likelihood`, `torch_version`, `laplace_version`,",
        "`curvlinops_version`, `parameters` (P, `randn * 0.5`), `X`, `y`, `outputs` = model(X).",
        "",
        f"- `X_test` ({N_TEST}, *input_shape): test inputs, drawn after `X`, `y` from the same",
        "  generator.",
        "- `last_layer_name`: the `nn.Sequential` name of the final Linear, passed as",
        "  `last_layer_name` to the last-layer classes.",
        "- `last_layer_slice` int64 [start, stop): the last layer's entries (weight, then bias)",
        "  in `parameters`; the last-layer posterior is over `parameters[start:stop]` only.",
        "- `hp__<case>__prior_precision` (1, T or P), `hp__<case>__sigma_noise`,",
        "  `hp__<case>__temperature`, `hp__<case>__prior_mean` (0-d): the hyperparameters of each",
        "  case (table below). The prior precision is stored in its all-parameter form: T",
        "  entries, one per parameter tensor (W₀, b₀, W₁, b₁, …), or P, one per parameter. For",
        "  subset `last_layer` the value passed to laplace-torch is the trailing part: the last",
        "  2 per-tensor entries, or `[start:stop]` of the per-parameter ones.",
        "- `lml__<structure>__<subset>__<case>` (0-d): `la.log_marginal_likelihood(...)`,",
        "  structure ∈ {full, diag, kron}, subset ∈ {all, last_layer}. Missing combinations are",
        "  the ones laplace-torch rejects (below). `lml__kron__<subset>__kron_damped_form` is",
        "  not a `log_marginal_likelihood` return value but the same evidence assembled from",
        "  laplace-torch's damped `KronDecomposed.logdet()` (see damping below).",
        "- `f_mu__<structure>__<subset>` (5, C), `f_var__<structure>__<subset>` (5, C, C): GLM",
        "  predictive mean and functional covariance J P⁻¹ Jᵀ on `X_test` at the `scalar_a`",
        "  hyperparameters (P includes h = 1/σ²). Classification: from",
        "  `la._glm_predictive_distribution(X_test)`; regression: `f_mu, f_var = la(X_test,",
        "  pred_type='glm')` (f_var has no σ² added).",
        "- `probit__<structure>__<subset>` (5, C), classification only:",
        "  `la(X_test, pred_type='glm', link_approx='probit')`.",
        "- `bridge__<structure>__<subset>` (5, C), classification only:",
        "  `la(X_test, pred_type='glm', link_approx='bridge')` (the Laplace bridge after",
        "  laplace-torch's zero-mean correction), checked against an independent implementation.",
        "- `opt__<structure>__<subset>__<prior_structure>__prior_precision` (1 or T) and",
        "  `opt__…__lml` (0-d): `la.optimize_prior_precision(method='marglik', pred_type='glm',",
        "  prior_structure=<scalar|layerwise>)` on a Laplace built with σ, T of `scalar_a`",
        "  (T = 1, prior mean 0), then `la.prior_precision` and `la.log_marginal_likelihood()`.",
        "- `calls`: compact JSON: `loader`, `model`, `backend`,",
        "  `optimize_prior_precision_defaults`, and `calls`: the exact constructor / fit / method",
        "  calls for every `lml__…` key, for `predictive__<structure>__<subset>` (the `f_mu`,",
        "  `f_var`, `probit` keys) and for `opt__<structure>__<subset>__<prior_structure>` (both",
        "  `opt__…` keys); `unsupported`: the same names for what laplace-torch rejected, with",
        "  its error; `warnings`: each warning message with the calls that emitted it.",
        "",
        "### Hyperparameter cases",
        "",
        "| case | prior precision | σ (regression; 1 for classification) | T | prior mean "
        "| construction |",
        "| --- | --- | --- | --- | --- | --- |",
        "| `scalar_a` | 0.5 | 0.7 | 1 | 0 | |",
        "| `scalar_b` | 3.0 | 1.3 | 1 | 0 | |",
        "| `layerwise` | one per parameter tensor, seeded uniform(0.3, 3.0) | 0.7 | 1 | 0 | |",
        "| `diag` | one per parameter, seeded uniform(0.3, 3.0) | 0.7 | 1 | 0 | full, diag only |",
        "| `temperature` | 1.5 | 0.7 | 2.0 | 0 | `temperature=2.0` |",
        "| `prior_mean` | 1.5 | 0.7 | 1 | 0.3 | `prior_mean=0.3` |",
        "| `kron_damped` | 1.5 | 0.7 | 1 | 0 | kron only, `damping=True` |",
        "| `kron_damped_form` | 1.5 | 0.7 | 1 | 0 | kron only, `damping=True`, damped logdet |",
        "",
        "The prior precision is passed as a 1-D float64 tensor as `prior_precision=` of",
        "`log_marginal_likelihood`; for regression σ is passed as `sigma_noise=` (laplace-torch",
        "raises `ValueError` if `sigma_noise` is passed at all for classification). T, the prior",
        "mean and damping are constructor arguments.",
        "",
        f"## laplace-torch {LAPLACE_VERSION} semantics",
        "",
        "- Backend: the default (`backend=None` → `CurvlinopsGGN`), fitted on one batch of all",
        "  N examples. full: curvlinops `GGNLinearOperator` materialised against I; diag:",
        "  `GGNInterface.diag`, the exact GGN diagonal from torch.func Jacobians (not sampled);",
        "  kron: curvlinops `KFACLinearOperator`, type-2, expand, `separate_weight_and_bias=True`,",
        "  factors `[B, A]` per weight (B: out × out, A: in × in; conv: in = c·k·k) and `[B]` per",
        "  bias. All curvature is the SUM over the data at σ = 1, T = 1.",
        "- Evidence: `log_likelihood − ½(log det P − log det P0) − ½ (θ* − μ0)ᵀ P0 (θ* − μ0)`,",
        "  with P = h·H + P0, h = 1/(σ² T). `log_likelihood` = −CE_sum / T (classification) or",
        "  −½ SSE / (σ² T) − N·C·log(σ√(2π)) (regression; the normaliser does not involve T).",
        "  So `temperature` scales both the data term and the curvature by 1/T (via h).",
        "- `prior_mean` (scalar) is μ0 for every parameter of the subset; it only enters the",
        "  scatter term (θ* − μ0)ᵀ P0 (θ* − μ0). The posterior mean stays θ* (the MAP).",
        "- Prior precision: length 1 (scalar), `n_layers` or `n_params`. `n_layers` counts",
        "  parameter TENSORS (weight and bias separately), in parameter-vector order; for the",
        "  last-layer classes `n_layers` = 2 (last weight, last bias) and `n_params` = the last",
        "  layer's parameter count. In kron each per-tensor entry is the δ added to its own",
        "  Kronecker block (weight block and bias block separately):",
        "  log det(h B⊗A + δI) = Σ_ij log(h β_i α_j + δ).",
        "- `damping=True` (kron only). What the code does: `fit` stores",
        "  `la.H = H_facs.decompose(damping=True)`, a `KronDecomposed` whose `logdet`, `_bmm`,",
        "  `diag`, `to_matrix` would use, per weight block with eigenvalues λ_B, λ_A (already",
        "  multiplied by √h each: `KronDecomposed.__mul__` spreads a scalar as h^(1/2) over a",
        "  pair) and δ its prior entry, (λ_B,i + √δ)(λ_A,j + √δ), i.e. the block",
        "  (√h B_la + √δ I) ⊗ (√h A_la + √δ I); a bias block (one factor) ignores damping:",
        "  h B + δ I. BUT `la.posterior_precision` is `la.H * h + prior_precision`, and",
        "  `KronDecomposed.__mul__` / `__add__` build new objects without passing `damping`, so",
        "  the flag is lost: `log_marginal_likelihood`, the predictive and sampling are exactly",
        "  the undamped ones. Hence `lml__kron__*__kron_damped` (the real return value) equals",
        "  the undamped evidence at δ = 1.5 (checked against the undamped dense reference).",
        "  Worse, `KronLLLaplace(..., damping=True)` already loses the flag in `__init__`",
        "  (`LLLaplace.__init__` calls `KronLaplace.__init__` without `damping`, which resets",
        "  `la.damping = False`). `lml__kron__*__kron_damped_form` is the damped evidence",
        "  `la.log_likelihood − ½(KronDecomposed(pp.eigenvectors, pp.eigenvalues, pp.deltas,",
        "  damping=True).logdet() − la.log_det_prior_precision) − ½ la.scatter` with",
        "  pp = `la.posterior_precision`: log det P0 and the scatter use the ordinary diagonal",
        "  P0. The factors B_la, A_la are laplace-torch's own: for classification bdlcore's B, A;",
        "  for regression laplace-torch multiplies the curvlinops MSELoss(reduction='sum')",
        "  factors (B = 2 B_bdlcore) by ½ as √½ on EACH, so B_la = √2·B_bdlcore and",
        "  A_la = A_bdlcore/√2. The undamped posterior only sees the product, the damped one",
        "  does not: regression `kron_damped_form` is reproduced with",
        "  (√h·√2·B + √δ I) ⊗ (√h·A/√2 + √δ I) from bdlcore's B, A (verified here).",
        "- GLM predictive: f_var = J P⁻¹ Jᵀ (C × C per input; for the last-layer classes J is",
        "  the last layer's Jacobian φ(x)ᵀ ⊗ I, then I for the bias). Probit:",
        "  softmax(κ ⊙ f) with κ = 1/√(1 + π/8·diag f_var).",
        f"- `optimize_prior_precision(method='marglik')`: defaults n_steps = {o['n_steps']},",
        f"  lr = {o['lr']}, init_prior_prec = {o['init_prior_prec']}; Adam on the log prior",
        "  precision, minimising −`log_marginal_likelihood`, then the prior precision is set to",
        "  exp of the final iterate (not the best iterate). `prior_structure='layerwise'` starts",
        "  from one value per parameter tensor. Note the default `prior_structure` differs:",
        f"  `{PARAM_OPT_PRIOR_STRUCTURE}` in `ParametricLaplace`, `{BASE_OPT_PRIOR_STRUCTURE}` in",
        "  `BaseLaplace` (we always pass it).",
        "",
        "### Rejected by laplace-torch (not stored)",
        "",
        *[f"- `{combo}`: {msg}" for combo, msg in unsupported],
        "",
        "The per-layer prior fails for every last-layer class because",
        "`LLLaplace.prior_precision_diag` accepts only a scalar or per-parameter prior (the",
        "setter accepts length `n_layers` = 2, the evidence then raises); a per-parameter prior",
        "is rejected by `KronLaplace`'s prior setter.",
        "",
        "### Warnings emitted",
        "",
        *[f"- {w} (from the `" + "`, `".join(sorted({k.split("__")[0] + "__*" for r in
                                                       report.values()
                                                       for k in r["warnings"].get(w, [])}))
          + "` calls of " + ", ".join(f"`{n}`" for n, r in report.items() if w in r["warnings"])
          + "; each call is listed under `warnings` in `calls`)" for w in warn],
        "- (FutureWarning `torch.jit.script` is deprecated, from torch inside the curvature",
        "  code paths: filtered.)",
        "",
        "## Files",
        "",
    ]
    for name, arrays in results.items():
        r = report[name]
        lines += readme_file_section(
            name, arrays, sizes[name],
            f", parameter tensors T = {r['n_tensors']['all']}, last layer "
            f"{r['n_last']} parameters")
    (OUT_DIR / "README.md").write_text("\n".join(lines))


def main() -> None:
    t0 = time.perf_counter()
    configure_torch()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    results, sizes, report = {}, {}, {}
    for defn in build_models():
        arrays = generate(defn, report)
        path = OUT_DIR / f"{defn['name']}.npz"
        size = write_fixture(path, arrays)
        assert size < MAX_FILE_BYTES, f"{path.name} is {size} bytes"
        results[defn["name"]], sizes[defn["name"]] = arrays, size
        e = report[defn["name"]]["errs"]
        print(f"{OUT_DIR_REL}/{path.name}: {size:,} bytes, P = {arrays['parameters'].shape[0]}, "
              f"{sum(k.startswith('lml__') for k in arrays)} evidences; max errors: "
              + ", ".join(f"{k} {v:.1e}" for k, v in e.items()))
    write_readme(results, sizes, report)
    print(f"{OUT_DIR_REL}/README.md written; torch {torch.__version__}, laplace-torch "
          f"{LAPLACE_VERSION}, curvlinops {CURVLINOPS_VERSION}; "
          f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
