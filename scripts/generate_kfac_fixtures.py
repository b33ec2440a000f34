"""Generate the K-FAC reference fixtures for bdlcore from curvlinops (and laplace-torch).

Writes one ``.npz`` file per small model into ``Tests/Fixtures/kfac/`` (plus a README.md
describing them). Each file holds the model (spec, parameters), the data and the outputs in
the same format as the engine fixtures, and the K-FAC factors A (input factor) and B
(output-gradient factor) of every Linear/Conv2d layer as computed by curvlinops'
``KFACLinearOperator`` and converted to bdlcore's conventions (DESIGN.md §4), for four
variants: expand/reduce × exact (type-2) / empirical Fisher. For the MLP classifier it also
stores laplace-torch's ``KronLaplace`` factors. The Swift tests read these files; CI never
needs PyTorch.

Before writing anything, the script recomputes every factor independently in plain torch
(per-example Jacobians with ``torch.func``, im2col with ``F.unfold``) from DESIGN.md's
formulas and asserts that the converted curvlinops (and laplace-torch) factors agree with
them, and that the dense curvlinops K-FAC matrix equals bdlcore's block layout
(weight block B ⊗ A in row-major vec order, bias block B).

Requirements: torch, numpy, curvlinops (PyPI: ``curvlinops-for-pytorch``) and laplace-torch,
in a separate virtualenv (the pattern ``.venv*/`` is gitignored). From the repository root::

    python3 -m venv .venv-fixtures
    .venv-fixtures/bin/pip install torch numpy curvlinops-for-pytorch==3.0.1 laplace-torch==0.3
    .venv-fixtures/bin/python scripts/generate_kfac_fixtures.py

Deterministic: seeded ``torch.Generator`` per model, float64 everywhere, one thread, fixed
ZIP timestamps, no compression (the same file format as the engine fixtures). The layer
specs, seeding, parameter and data draws and the ``.npz`` writer are shared with
``generate_engine_fixtures.py`` through ``fixture_common.py`` in this folder.

Conversions from curvlinops 3.0.1 to bdlcore (see the README written next to the files):
- curvlinops is called with ``separate_weight_and_bias=True`` (its default): A has no
  appended bias row/column and the bias block uses B alone, as in bdlcore;
- A: curvlinops already divides by N·R (expand) or N (reduce, after averaging over
  positions) — no conversion;
- B: with ``reduction='sum'`` curvlinops returns a sum over examples (and positions for
  expand) — no conversion for classification (CrossEntropyLoss(reduction='sum')). For
  regression curvlinops uses MSELoss(reduction='sum') = Σ‖f − y‖², i.e. twice bdlcore's
  σ = 1 loss ½Σ‖f − y‖²: its type-2 B uses Λ = 2I (B × 2) and its empirical B uses the
  gradient 2(f − y) (B × 4). So regression B is multiplied by 1/2 (exact) and 1/4 (empirical).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import jacrev, vmap

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fixture_common.py, run as a script

from fixture_common import (  # noqa: E402
    REPO_ROOT, MeanOverSequence, assert_close, base_arrays, configure_torch, draw_data,
    full_jacobian, im2col, loss_fn, readme_file_section, seeded_model, write_fixture)

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script notices on import

from curvlinops import FisherType, KFACLinearOperator, KFACType  # noqa: E402

OUT_DIR_REL = "Tests/Fixtures/kfac"
OUT_DIR = REPO_ROOT / OUT_DIR_REL

MAX_FILE_BYTES = 500_000

# Agreement required between the library factors and the independent torch computation:
# float64, tiny models, factors of size O(1..10); observed differences are ~1e-15.
RTOL = 1e-10
ATOL = 1e-10

CURVLINOPS_VERSION = importlib.metadata.version("curvlinops-for-pytorch")
try:
    LAPLACE_VERSION = importlib.metadata.version("laplace-torch")
    from laplace import KronLaplace  # noqa: E402
except importlib.metadata.PackageNotFoundError:  # optional
    LAPLACE_VERSION, KronLaplace = "not installed", None

# Variants: (key prefix, curvlinops KFACType, curvlinops FisherType).
VARIANTS = [
    ("expand_exact", KFACType.EXPAND, FisherType.TYPE2),
    ("reduce_exact", KFACType.REDUCE, FisherType.TYPE2),
    ("expand_empirical", KFACType.EXPAND, FisherType.EMPIRICAL),
    ("reduce_empirical", KFACType.REDUCE, FisherType.EMPIRICAL),
]


def build_models() -> list[dict]:
    """Model definitions: name, seed, module, per-example input shape, likelihood, N."""
    return [
        dict(name="mlp_classification", seed=2001, likelihood="classification", n=9,
             input_shape=(6,), laplace=True,
             model=lambda: nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))),
        dict(name="mlp_regression", seed=2002, likelihood="regression", n=8,
             input_shape=(5,), laplace=False,
             model=lambda: nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))),
        # input 2x5x5 -> conv (k3, p1) 3x5x5 (R = 25) -> flatten 75 -> Linear(75, 4)
        dict(name="cnn_classification", seed=2003, likelihood="classification", n=6,
             input_shape=(2, 5, 5), laplace=False,
             model=lambda: nn.Sequential(
                 nn.Conv2d(2, 3, kernel_size=3, stride=1, padding=1), nn.ReLU(),
                 nn.Flatten(), nn.Linear(75, 4))),
        # input (T=3, D=4); Linear(4, 5) is shared over the T positions (R = 3); the loss
        # sees the pooled output only (one loss term per example)
        dict(name="sequence_classification", seed=2004, likelihood="classification", n=7,
             input_shape=(3, 4), laplace=False,
             model=lambda: nn.Sequential(
                 nn.Linear(4, 5), nn.ReLU(), MeanOverSequence(), nn.Linear(5, 3))),
    ]


def b_scale(likelihood: str, fisher_type: FisherType) -> float:
    """Factor that turns curvlinops' B (reduction='sum') into bdlcore's B."""
    if likelihood == "classification":
        return 1.0  # CrossEntropyLoss(reduction='sum') is bdlcore's loss
    # MSELoss(reduction='sum') = 2 × (½ Σ‖f − y‖²): Λ = 2I, gradient 2(f − y)
    return {FisherType.TYPE2: 0.5, FisherType.EMPIRICAL: 0.25}[fisher_type]


def curvlinops_loss(likelihood: str, reduction: str = "sum") -> nn.Module:
    if likelihood == "classification":
        return nn.CrossEntropyLoss(reduction=reduction)
    return nn.MSELoss(reduction=reduction)


def close(a: torch.Tensor, b: torch.Tensor, what: str) -> float:
    """Assert agreement; returns the max abs difference."""
    return assert_close(a, b, what, rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------------------
# Independent reference: per-example layer inputs a_{n,r} and backpropagated vectors
# g_{n,k,r} from torch.func Jacobians, then DESIGN.md's expand/reduce formulas.
# ----------------------------------------------------------------------------------------

def output_vectors(outputs: torch.Tensor, y: torch.Tensor, likelihood: str,
                   fisher: str) -> torch.Tensor:
    """(N, C, K) output-space vectors: columns of S (exact) or the loss gradient (empirical)."""
    n, C = outputs.shape
    if fisher == "exact":
        if likelihood == "classification":
            p = torch.softmax(outputs, dim=-1)
            # column c: √p_c (e_c − p), so S Sᵀ = diag(p) − p pᵀ
            S = (torch.eye(C)[None] - p[:, :, None]) * p.sqrt()[:, None, :]
            lam = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
            close(S @ S.transpose(1, 2), lam, "S Sᵀ = Λ (categorical)")
            return S
        return torch.eye(C).expand(n, C, C).clone()  # Λ = I at σ = 1
    if likelihood == "classification":
        r = torch.softmax(outputs, dim=-1) - F.one_hot(y, C).to(outputs.dtype)
    else:
        r = outputs - y  # gradient of ½‖f − y‖²
    return r[:, :, None]


def layer_quantities(model: nn.Sequential, X: torch.Tensor, idx: int):
    """a (N, R, in) and dz (N, C, R, out) = ∂f(x_n)/∂(layer output at position r)."""
    m = model[idx]
    h = X
    for i in range(idx):
        h = model[i](h)
    x_in = h.detach()
    z = m(x_in).detach()
    rest = model[idx + 1:]

    def head(zi: torch.Tensor) -> torch.Tensor:
        return rest(zi.unsqueeze(0)).squeeze(0)

    dz = vmap(jacrev(head))(z)  # (N, C, *z.shape[1:])
    n, C = dz.shape[:2]
    if isinstance(m, nn.Linear):
        if x_in.dim() == 2:
            a, dz = x_in[:, None, :], dz[:, :, None, :]
        else:
            assert x_in.dim() == 3
            a = x_in
    else:
        a = im2col(m, x_in)
        co = m.out_channels
        dz = dz.reshape(n, C, co, -1).transpose(2, 3)
        W2 = m.weight.detach().reshape(co, -1)
        lin = a @ W2.T + (m.bias.detach() if m.bias is not None else 0.0)
        close(lin, z.reshape(n, co, -1).transpose(1, 2), f"im2col of layer {idx}")
    return a, dz


def reference_factors(a: torch.Tensor, g: torch.Tensor, approx: str):
    """DESIGN.md §4: a (N, R, in), g (N, K, R, out) -> (A, B)."""
    n, R, _ = a.shape
    if approx == "expand":
        A = torch.einsum("nri,nrj->ij", a, a) / (n * R)
        B = torch.einsum("nkro,nkrp->op", g, g)
    else:
        a_hat = a.mean(dim=1)
        g_hat = g.sum(dim=2)
        A = a_hat.T @ a_hat / n
        B = torch.einsum("nko,nkp->op", g_hat, g_hat)
    return A, B


def dense_blocks(model: nn.Sequential, factors: dict[int, tuple[torch.Tensor, torch.Tensor]]):
    """bdlcore's dense K-FAC: weight block B ⊗ A (row-major vec), bias block B."""
    blocks = []
    for idx, m in enumerate(model):
        if idx in factors:
            A, B = factors[idx]
            blocks.append(torch.kron(B, A))
            if m.bias is not None:
                blocks.append(B)
    return torch.block_diag(*blocks)


# ----------------------------------------------------------------------------------------

def curvlinops_factors(model, X, y, likelihood, approx, fisher_type, reduction="sum"):
    params = list(model.parameters())
    linop = KFACLinearOperator(
        model, curvlinops_loss(likelihood, reduction), params, [(X, y)],
        fisher_type=fisher_type, kfac_approx=approx, separate_weight_and_bias=True,
        check_deterministic=False)
    # curvlinops 3.0.1 ADDS to its cached factors on every compute_kronecker_factors() call
    # (and check_deterministic=True already computes them through its matvec checks), so
    # a second call would double A and B: compute exactly once, from an empty cache.
    assert not linop._input_covariances and not linop._gradient_covariances
    linop.compute_kronecker_factors()
    out = {}
    for name in linop._mapping:
        out[int(name)] = (linop._input_covariances[name].detach().clone(),
                          linop._gradient_covariances[name].detach().clone())
    return out, linop


def generate(defn: dict, report: list[str]) -> dict[str, np.ndarray]:
    name, likelihood, n = defn["name"], defn["likelihood"], defn["n"]
    gen, model, spec, theta = seeded_model(defn)
    P = theta.numel()
    X, outputs, y = draw_data(defn, model, gen)
    C = outputs.shape[-1]

    layer_idxs = [i for i, m in enumerate(model) if isinstance(m, (nn.Linear, nn.Conv2d))]
    quantities = {i: layer_quantities(model, X, i) for i in layer_idxs}

    # Full parameter Jacobian (N, C, P), to check the per-layer a, dz against it.
    jac = full_jacobian(model, X, theta)
    off = 0
    for i in layer_idxs:
        a, dz = quantities[i]
        m = model[i]
        dout, din = dz.shape[-1], a.shape[-1]
        wjac = torch.einsum("ncro,nri->ncoi", dz, a).reshape(n, C, dout * din)
        close(wjac, jac[:, :, off:off + dout * din], f"{name}: weight Jacobian of layer {i}")
        off += dout * din
        if m.bias is not None:
            close(dz.sum(dim=2), jac[:, :, off:off + dout], f"{name}: bias Jacobian of layer {i}")
            off += dout
    assert off == P

    arrays = base_arrays(defn, spec, theta, X, y, outputs,
                         {"curvlinops_version": CURVLINOPS_VERSION,
                          "laplace_version": LAPLACE_VERSION})
    conversions: dict[str, dict] = {}

    for prefix, approx, fisher_type in VARIANTS:
        fisher = "exact" if fisher_type == FisherType.TYPE2 else "empirical"
        vecs = output_vectors(outputs, y, likelihood, fisher)  # (N, C, K)
        if fisher == "empirical":  # Σ_n J_nᵀ r_n is the gradient of the summed loss
            loss = loss_fn(model(X), y, likelihood)
            grad = torch.cat([g.reshape(-1) for g in
                              torch.autograd.grad(loss, list(model.parameters()))])
            close(torch.einsum("ncp,nc->p", jac, vecs[:, :, 0]), grad,
                  f"{name}: empirical residuals vs gradient")
        ref = {}
        for i in layer_idxs:
            a, dz = quantities[i]
            g = torch.einsum("nck,ncro->nkro", vecs, dz)
            ref[i] = reference_factors(a, g, approx.value)

        cl, linop = curvlinops_factors(model, X, y, likelihood, approx, fisher_type)
        assert sorted(cl) == layer_idxs
        s = b_scale(likelihood, fisher_type)
        worst = 0.0
        for i in layer_idxs:
            A_cl, B_cl = cl[i]
            A_ref, B_ref = ref[i]
            assert A_cl.shape == A_ref.shape, (
                f"{name}/{prefix}: curvlinops A_{i} has shape {tuple(A_cl.shape)}, "
                f"expected {tuple(A_ref.shape)} (bias appended?)")
            A, B = A_cl, B_cl * s
            worst = max(worst, close(A, A_ref, f"{name}/{prefix}: A_{i} vs reference"),
                        close(B, B_ref, f"{name}/{prefix}: B_{i} vs reference"))
            arrays[f"{prefix}__A_{i}"] = A.numpy().copy()
            arrays[f"{prefix}__B_{i}"] = B.numpy().copy()
        conversions[prefix] = {"curvlinops": f"KFACType.{approx.name}, FisherType."
                               f"{fisher_type.name}, {type(curvlinops_loss(likelihood)).__name__}"
                               f"(reduction='sum'), separate_weight_and_bias=True",
                               "A_times": 1.0, "B_times": s}

        # The dense curvlinops operator equals bdlcore's block layout (B ⊗ A row-major, bias B).
        dense_cl = linop @ torch.eye(P)
        dense_ours = dense_blocks(model, {i: (torch.from_numpy(arrays[f"{prefix}__A_{i}"]),
                                              torch.from_numpy(arrays[f"{prefix}__B_{i}"]))
                                          for i in layer_idxs})
        close(dense_cl * s, dense_ours, f"{name}/{prefix}: dense curvlinops K-FAC vs B ⊗ A layout")

        # reduction='mean' divides B by N (A unchanged): documented, not stored.
        cl_mean, _ = curvlinops_factors(model, X, y, likelihood, approx, fisher_type, "mean")
        for i in layer_idxs:
            close(cl_mean[i][0], cl[i][0], f"{name}/{prefix}: A_{i} with reduction='mean'")
            mean_fix = n * (C if likelihood == "regression" else 1)
            close(cl_mean[i][1] * mean_fix, cl[i][1],
                  f"{name}/{prefix}: B_{i} with reduction='mean' × {mean_fix}")
        report.append(f"{name}/{prefix}: curvlinops B × {s} and A match the reference "
                      f"(max abs diff {worst:.1e})")

    if defn["laplace"] and KronLaplace is not None:
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y),
                                             batch_size=n, shuffle=False)
        la = KronLaplace(model, likelihood)  # default backend: CurvlinopsGGN (type-2, expand)
        la.fit(loader)
        kfacs = la.H_facs.kfacs
        # laplace-torch orders them per module: [B, A] for the weight, [B] for the bias.
        pos = 0
        for i in layer_idxs:
            B_la, A_la = kfacs[pos]
            pos += 1
            if model[i].bias is not None:
                (B_bias,) = kfacs[pos]
                pos += 1
                close(B_bias, B_la, f"{name}/laplace_kron: bias B_{i} vs weight B_{i}")
            ref_A = torch.from_numpy(arrays[f"expand_exact__A_{i}"])
            ref_B = torch.from_numpy(arrays[f"expand_exact__B_{i}"])
            close(A_la, ref_A, f"{name}/laplace_kron: A_{i} vs reference")
            close(B_la, ref_B, f"{name}/laplace_kron: B_{i} vs reference")
            arrays[f"laplace_kron__A_{i}"] = A_la.detach().numpy().copy()
            arrays[f"laplace_kron__B_{i}"] = B_la.detach().numpy().copy()
        assert pos == len(kfacs)
        conversions["laplace_kron"] = {
            "laplace": "KronLaplace(model, 'classification') default backend CurvlinopsGGN, "
                       "fit on one full batch; H_facs.kfacs [B, A] per weight, [B] per bias",
            "A_times": 1.0, "B_times": 1.0}
        report.append(f"{name}/laplace_kron: KronLaplace factors unconverted match "
                      "expand_exact and the reference")

    arrays["conversions"] = np.array(json.dumps(conversions))
    return arrays


def write_readme(results: dict[str, dict[str, np.ndarray]], sizes: dict[str, int]) -> None:
    lines = [
        "# K-FAC reference fixtures",
        "",
        "Kronecker factors of small models computed by curvlinops (and, for one model,",
        "laplace-torch's `KronLaplace`), converted to bdlcore's conventions (DESIGN.md §4) and",
        "checked against an independent float64 torch computation, so that the Swift tests need",
        "no PyTorch.",
        "",
        f"Made by `scripts/generate_kfac_fixtures.py` with torch {torch.__version__}, curvlinops",
        f"(PyPI `curvlinops-for-pytorch`) {CURVLINOPS_VERSION} and laplace-torch {LAPLACE_VERSION}",
        "(also stored in each file). Do not edit by hand. To regenerate, from the repository root:",
        "",
        "```sh",
        "python3 -m venv .venv-fixtures",
        f".venv-fixtures/bin/pip install torch numpy curvlinops-for-pytorch=={CURVLINOPS_VERSION} "
        f"laplace-torch=={LAPLACE_VERSION}",
        ".venv-fixtures/bin/python scripts/generate_kfac_fixtures.py",
        "```",
        "",
        "The script is deterministic (seeded generators, float64, one thread, fixed ZIP",
        "timestamps). Before writing, it asserts (rtol = atol = 1e-10) that every stored factor",
        "equals an independent reference computed in plain torch from DESIGN.md §4's formulas",
        "(per-example Jacobians of the network output with respect to each layer's output via",
        "`torch.func.jacrev`, im2col via `F.unfold`), that these per-layer quantities reproduce the",
        "full parameter Jacobian, and that curvlinops' dense K-FAC matrix (times the B conversion)",
        "equals bdlcore's layout: weight block B ⊗ A on the row-major vec of W, bias block B.",
        "",
        "## Format",
        "",
        "Each `.npz` is an uncompressed (stored) ZIP archive of `.npy` version 1.0 entries,",
        "little-endian, C order, like the engine fixtures. String keys are 0-d numpy unicode",
        "arrays (dtype `<U…`, UTF-32LE).",
        "",
        "## Keys",
        "",
        "Common keys (same meaning as in `Tests/Fixtures/engine/`):",
        "",
        "- `spec`: JSON list of layer dicts in `nn.Sequential` order (`Linear`, `Conv2d`, `ReLU`,",
        "  `Tanh`, `Flatten`, `MeanOverSequence`, with the engine fixtures' keys).",
        "- `input_shape`: int64 per-example input shape.",
        "- `likelihood`: `\"classification\"` or `\"regression\"`.",
        "- `parameters` (P): `parameters_to_vector(model.parameters())`, drawn as `randn * 0.5`.",
        "- `X` (N, *input_shape); `y`: int64 labels (N,) or float64 targets (N, C);",
        "  `outputs` (N, C) = `model(X)`.",
        "- `torch_version`, `curvlinops_version`, `laplace_version`: the versions that made the file.",
        "- `conversions`: JSON string, per variant the curvlinops/laplace-torch call and the",
        "  factors `A_times` / `B_times` that were multiplied onto the library's A and B.",
        "",
        "Factor keys, for each Linear/Conv2d layer at position L of `spec`:",
        "",
        "- `<variant>__A_<L>` (in, in) and `<variant>__B_<L>` (out, out), variants",
        "  `expand_exact`, `reduce_exact`, `expand_empirical`, `reduce_empirical`.",
        "  For Conv2d, in = in_channels·k·k with the (c, kh, kw) order of the flattened weight.",
        "- `laplace_kron__A_<L>`, `laplace_kron__B_<L>` (only `mlp_classification.npz`).",
        "",
        "## Conventions (DESIGN.md §4)",
        "",
        "With layer inputs a_{n,r} (R positions per example: 1 for a dense layer, T for the",
        "sequence layer, H_out·W_out im2col patches for Conv2d) and backpropagated output vectors",
        "g_{n,k,r} = J_{z_{n,r}}ᵀ s_{n,k}:",
        "",
        "- expand: A = (1/(N R)) Σ_{n,r} a aᵀ, B = Σ_{n,k,r} g gᵀ;",
        "- reduce: â_n = (1/R) Σ_r a_{n,r}, ĝ_{n,k} = Σ_r g_{n,k,r}; A = (1/N) Σ_n â âᵀ,",
        "  B = Σ_{n,k} ĝ ĝᵀ.",
        "- exact: s_{n,k} are the columns of S with S Sᵀ = Λ — classification √p_k (e_k − p)",
        "  (K = C), regression the identity (Λ = I at σ = 1).",
        "- empirical: K = 1 and s_n is the gradient of the example's NLL with respect to f:",
        "  p − onehot(y) for classification, f − y for regression (loss ½‖f − y‖², σ = 1).",
        "- A never has the bias appended; the bias block is B alone. The weight block is",
        "  B ⊗ A acting on the row-major vec of W (out, in).",
        "",
        "For the two MLPs R = 1, so expand and reduce coincide.",
        "",
        f"## Conversions from curvlinops {CURVLINOPS_VERSION}",
        "",
        "`KFACLinearOperator(model, loss, params, [(X, y)], fisher_type=FisherType.TYPE2 or",
        "FisherType.EMPIRICAL, kfac_approx=KFACType.EXPAND or KFACType.REDUCE,",
        "separate_weight_and_bias=True)`, factors read from `_input_covariances` (A) and",
        "`_gradient_covariances` (B) after `compute_kronecker_factors()`; loss",
        "`CrossEntropyLoss(reduction='sum')` or `MSELoss(reduction='sum')`.",
        "",
        "- A: no conversion. curvlinops already divides Σ a aᵀ by N·R (expand) and averages the",
        "  patches over positions before dividing by N (reduce); with",
        "  `separate_weight_and_bias=True` (its default) it does not append a bias 1.",
        "- B, classification: no conversion. With `reduction='sum'` curvlinops' B is the sum over",
        "  examples (and positions for expand) of g gᵀ with the same S / residual.",
        "- B, regression: curvlinops' `MSELoss(reduction='sum')` is Σ‖f − y‖² = 2 × bdlcore's",
        "  ½Σ‖f − y‖². Exact: its S = √2·I (Λ = 2I), so its B is 2 × ours; stored B = ½ × curvlinops.",
        "  Empirical: its residual is 2(f − y), so its B is 4 × ours; stored B = ¼ × curvlinops",
        "  (dividing by 2 alone would leave the empirical B twice DESIGN's value).",
        "- Not used, but checked: with `reduction='mean'` curvlinops divides B by N (classification)",
        "  or by N·C (MSELoss also averages over the C outputs) and leaves A unchanged.",
        "",
        f"## laplace-torch {LAPLACE_VERSION} (`mlp_classification.npz` only)",
        "",
        "`KronLaplace(model, 'classification')` with its default backend (CurvlinopsGGN: type-2,",
        "expand), fitted on one full batch of the N examples; factors from `la.H_facs.kfacs`, which",
        "holds `[B, A]` for each weight and `[B]` for each bias (checked equal to the weight's B).",
        "No conversion: laplace-torch stores curvlinops' classification factors as they are, so",
        "these equal `expand_exact__*`. Caution for regression (not stored here): laplace-torch",
        "multiplies its curvlinops `MSELoss(reduction='sum')` factors by ½ via `Kron.__mul__`, which",
        "spreads a scalar over a `[B, A]` pair as √½ on each factor. Its weight factors are then",
        "B = √2·B_bdlcore and A = A_bdlcore/√2 (only B ⊗ A equals bdlcore's block), its bias B",
        "equals bdlcore's, and with the `CurvlinopsEF` backend everything is 2 × bdlcore's",
        "empirical Fisher (curvlinops' empirical B is 4 × ours, halved once).",
        "",
        "## Files",
        "",
    ]
    for name, arrays in results.items():
        lines += readme_file_section(name, arrays, sizes[name])
    (OUT_DIR / "README.md").write_text("\n".join(lines))


def main() -> None:
    configure_torch()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    results, sizes, report = {}, {}, []
    for defn in build_models():
        arrays = generate(defn, report)
        path = OUT_DIR / f"{defn['name']}.npz"
        size = write_fixture(path, arrays)
        assert size < MAX_FILE_BYTES, f"{path.name} is {size} bytes"
        results[defn["name"]], sizes[defn["name"]] = arrays, size
        print(f"{OUT_DIR_REL}/{path.name}: {size:,} bytes, P = {arrays['parameters'].shape[0]}")
    for line in report:
        print(line)
    write_readme(results, sizes)
    print(f"{OUT_DIR_REL}/README.md written; torch {torch.__version__}, "
          f"curvlinops {CURVLINOPS_VERSION}, laplace-torch {LAPLACE_VERSION}")


if __name__ == "__main__":
    main()
