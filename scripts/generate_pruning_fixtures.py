"""Generate the pruning-score reference fixtures for bdlcore from laplace-torch.

Writes one ``.npz`` file per small model into ``Tests/Fixtures/pruning/`` (plus a README.md
describing them). Each file holds the model (spec, parameters), the data and outputs in the
format of the engine, K-FAC and Laplace fixtures, the hyperparameters (a per-tensor
"layerwise" prior precision, σ, T), and per posterior structure (``FullLaplace``,
``DiagLaplace``, ``KronLaplace`` of laplace-torch 0.3, fitted on all N examples at once) the
pruning scores derived from laplace-torch's own posterior:

- ``opd__<s>``      = diag(P)·θ²         optimal posterior damage (SpaM),
- ``obd__<s>``      = ½·h·diag(H)·θ²     optimal brain damage,
- ``kfac_obs__<s>`` = θ²/diag(P⁻¹)       the optimal-brain-surgeon saliency without its ½,

with P = ``la.posterior_precision`` (= h·H + P0, h = ``la._H_factor`` = 1/(σ²T)), H = ``la.H``
and θ the model's parameters (the posterior mean). diag(P): the matrix diagonal (full), the
vector itself (diag), ``KronDecomposed.diag()`` (kron); diag(P⁻¹): the diagonal of
``la.posterior_covariance`` (full), ``la.posterior_variance`` (diag),
``KronDecomposed.diag(exponent=-1)`` (kron); diag(H): ``la.H.diagonal()``, ``la.H``,
``Kron.diag()``.

Before writing, the script checks in plain torch, independently of those laplace-torch
routes (rtol = 1e-10): diag(P) of full and diag equals h·diag(G) + δ with G = Σ_n J_nᵀ Λ_n J_n
from ``fixture_common.full_jacobian`` (Λ = diag(p) − p pᵀ, or I for regression); the kron
diagonals equal those of the dense ``KronDecomposed.to_matrix()`` and of its
``torch.linalg.inv``; full's diag(P⁻¹) equals that of ``torch.linalg.inv`` of its P; and
OPD(diag) = 2·OBD(diag) + δ·θ² elementwise.

Requirements: torch, numpy, laplace-torch 0.3 and curvlinops (PyPI ``curvlinops-for-pytorch``)
3.0.1, in a separate virtualenv (``.venv*/`` is gitignored). From the repository root::

    python3 -m venv .venv-fixtures
    .venv-fixtures/bin/pip install torch numpy curvlinops-for-pytorch==3.0.1 laplace-torch==0.3
    .venv-fixtures/bin/python scripts/generate_pruning_fixtures.py

Deterministic: seeded ``torch.Generator`` per model (parameters, then X, y, then the prior
precisions), float64, one thread, fixed ZIP timestamps, no compression.
"""

from __future__ import annotations

import copy
import importlib.metadata
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fixture_common.py, run as a script

from fixture_common import (  # noqa: E402
    REPO_ROOT, assert_close, base_arrays, configure_torch, draw_data, full_jacobian,
    readme_file_section, seeded_model, write_fixture)

# torch warns on every torch.jit.script call made inside curvlinops code paths.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)

from laplace import DiagLaplace, FullLaplace, KronLaplace  # noqa: E402

OUT_DIR_REL = "Tests/Fixtures/pruning"
OUT_DIR = REPO_ROOT / OUT_DIR_REL

# float64, tiny models: the routes agree to ~1e-14 relative.
RTOL = 1e-10
ATOL = 1e-12

LAPLACE_VERSION = importlib.metadata.version("laplace-torch")
CURVLINOPS_VERSION = importlib.metadata.version("curvlinops-for-pytorch")

CLASSES = {"full": FullLaplace, "diag": DiagLaplace, "kron": KronLaplace}


def build_models() -> list[dict]:
    """Model definitions: name, seed, module, input shape, likelihood, N, σ and T."""
    return [
        dict(name="mlp_classification", seed=4001, likelihood="classification", n=20,
             input_shape=(6,), sigma_noise=1.0, temperature=1.5,
             model=lambda: nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 5),
                                         nn.ReLU(), nn.Linear(5, 4))),
        dict(name="mlp_regression", seed=4002, likelihood="regression", n=16,
             input_shape=(5,), sigma_noise=0.7, temperature=1.0,
             model=lambda: nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))),
    ]


def exact_ggn(model: nn.Module, X: torch.Tensor, theta: torch.Tensor, outputs: torch.Tensor,
              likelihood: str) -> torch.Tensor:
    """G = Σ_n J_nᵀ Λ_n J_n at σ = 1 (DESIGN.md §4)."""
    J = full_jacobian(model, X, theta)  # (N, C, P)
    if likelihood == "classification":
        p = torch.softmax(outputs, dim=-1)
        lam = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    else:
        lam = torch.eye(outputs.shape[-1]).expand(outputs.shape[0], -1, -1)
    return torch.einsum("ncp,ncd,ndq->pq", J, lam, J)


def posterior_diagonals(la, structure: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(diag P, diag P⁻¹, diag H) of a fitted laplace-torch posterior, by its own routes."""
    P = la.posterior_precision
    if structure == "full":
        return torch.diagonal(P), torch.diagonal(la.posterior_covariance), torch.diagonal(la.H)
    if structure == "diag":
        return P, la.posterior_variance, la.H
    return P.diag(), P.diag(exponent=-1), la.H.diag()


def generate(defn: dict) -> dict[str, np.ndarray]:
    name, lik = defn["name"], defn["likelihood"]
    gen, model, spec, theta = seeded_model(defn)
    X, outputs, y = draw_data(defn, model, gen)
    sizes = [p.numel() for p in model.parameters()]
    layerwise = torch.rand(len(sizes), generator=gen) * 2.7 + 0.3
    delta = torch.repeat_interleave(layerwise, torch.tensor(sizes))
    sigma, temperature = defn["sigma_noise"], defn["temperature"]
    h = 1.0 / (sigma ** 2 * temperature)
    G = exact_ggn(model, X, theta, outputs, lik)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y),
                                         batch_size=defn["n"], shuffle=False)

    arrays = base_arrays(defn, spec, theta, X, y, outputs,
                         {"laplace_version": LAPLACE_VERSION,
                          "curvlinops_version": CURVLINOPS_VERSION})
    arrays["prior_precision"] = layerwise.numpy().copy()
    arrays["sigma_noise"] = np.array(sigma, dtype=np.float64)
    arrays["temperature"] = np.array(temperature, dtype=np.float64)
    squares = theta ** 2
    scores = {}
    for structure, cls in CLASSES.items():
        kw = {"sigma_noise": sigma, "temperature": temperature, "prior_precision": layerwise.clone()}
        la = cls(copy.deepcopy(model), lik, **kw)
        la.fit(loader)
        what = f"{name}/{structure}"
        assert abs(la._H_factor - h) <= 1e-15 * h, what
        p_diag, variance, h_diag = (t.detach() for t in posterior_diagonals(la, structure))

        # Independent checks of the diagonals.
        if structure in ("full", "diag"):
            assert_close(p_diag, h * torch.diagonal(G) + delta, f"{what}: diag P", rtol=RTOL, atol=ATOL)
        if structure == "full":
            inverse = torch.linalg.inv(la.posterior_precision.detach())
            assert_close(variance, torch.diagonal(inverse), f"{what}: diag P⁻¹", rtol=RTOL, atol=ATOL)
        if structure == "diag":
            assert_close(variance, 1 / p_diag, f"{what}: diag P⁻¹", rtol=RTOL, atol=ATOL)
        if structure == "kron":
            dense = la.posterior_precision.to_matrix().detach()
            assert_close(p_diag, torch.diagonal(dense), f"{what}: diag P", rtol=RTOL, atol=ATOL)
            assert_close(variance, torch.diagonal(torch.linalg.inv(dense)), f"{what}: diag P⁻¹",
                         rtol=RTOL, atol=ATOL)
            assert_close(h * h_diag + delta, torch.diagonal(dense), f"{what}: h·diag H + δ",
                         rtol=RTOL, atol=ATOL)

        scores[structure] = {
            "opd": p_diag * squares,
            "obd": 0.5 * h * h_diag * squares,
            "kfac_obs": squares / variance,
        }
        for criterion, values in scores[structure].items():
            arrays[f"{criterion}__{structure}"] = values.numpy().copy()

    d = scores["diag"]
    assert_close(d["opd"], 2 * d["obd"] + delta * squares, f"{name}: OPD = 2·OBD + δθ²",
                 rtol=RTOL, atol=ATOL)
    assert_close(scores["full"]["obd"], d["obd"], f"{name}: OBD full vs diag", rtol=RTOL, atol=ATOL)
    return arrays


def write_readme(results: list[tuple[str, dict, int]]) -> None:
    lines = [
        "# Pruning reference fixtures",
        "",
        "OPD, OBD and K-FAC-OBS scores of small MLPs derived from laplace-torch",
        f"{LAPLACE_VERSION}'s `FullLaplace`, `DiagLaplace` and `KronLaplace` posteriors (its default",
        "curvlinops backend: the exact GGN, its exact diagonal and K-FAC expand), so that the tests",
        "need no PyTorch. Made by `scripts/generate_pruning_fixtures.py` with torch",
        f"{torch.__version__}, laplace-torch {LAPLACE_VERSION} and curvlinops {CURVLINOPS_VERSION};",
        "do not edit by hand. To regenerate, from the repository root:",
        "",
        "```sh",
        "python3 -m venv .venv-fixtures",
        f".venv-fixtures/bin/pip install torch numpy curvlinops-for-pytorch=={CURVLINOPS_VERSION} "
        f"laplace-torch=={LAPLACE_VERSION}",
        ".venv-fixtures/bin/python scripts/generate_pruning_fixtures.py",
        "```",
        "",
        "The script is deterministic (seeded generators, float64, one thread, fixed ZIP",
        "timestamps; reruns are byte-identical).",
        "",
        "## Definitions",
        "",
        "With θ = `parameters` (the posterior mean), P = `la.posterior_precision` = h·H + P0,",
        "h = `la._H_factor` = 1/(σ²T), H = `la.H` (the curvature summed over the data at σ = 1)",
        "and P0 = diag(δ) from the per-tensor `prior_precision`:",
        "",
        "- `opd__<structure>` = diag(P)·θ²;",
        "- `obd__<structure>` = ½·h·diag(H)·θ² (for kron, diag(H) is K-FAC's diagonal);",
        "- `kfac_obs__<structure>` = θ²/diag(P⁻¹);",
        "",
        "structure ∈ {full, diag, kron}. The script checks, rtol 1e-10, that diag(P) of full and",
        "diag equals h·diag(G) + δ with G the exact GGN from plain-torch Jacobians, that the kron",
        "diagonals equal those of the dense `KronDecomposed.to_matrix()` and of its inverse, that",
        "full's diag(P⁻¹) equals that of the inverted dense P, and that OPD(diag) = 2·OBD(diag) +",
        "δ·θ² elementwise.",
        "",
        "## Keys",
        "",
        "Common keys (as in `Tests/Fixtures/laplace/`): `spec`, `input_shape`, `likelihood`,",
        "`torch_version`, `laplace_version`, `curvlinops_version`, `parameters` (P, `randn * 0.5`),",
        "`X`, `y`, `outputs` = model(X). Then `prior_precision` (one per parameter tensor, W₀, b₀,",
        "W₁, b₁, …, seeded uniform(0.3, 3.0)), `sigma_noise` and `temperature` (0-d; σ = 0.7 for",
        "regression, T = 1.5 for classification), and the score keys above (P each).",
        "",
        "## Files",
        "",
    ]
    for name, arrays, size in results:
        lines += readme_file_section(name, arrays, size)
    (OUT_DIR / "README.md").write_text("\n".join(lines))


def main() -> None:
    configure_torch()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    results = []
    for defn in build_models():
        arrays = generate(defn)
        path = OUT_DIR / f"{defn['name']}.npz"
        size = write_fixture(path, arrays)
        results.append((defn["name"], arrays, size))
        print(f"{OUT_DIR_REL}/{defn['name']}.npz: {size:,} bytes")
    write_readme(results)


if __name__ == "__main__":
    main()
