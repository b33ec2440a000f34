"""Generate the influence-function reference fixtures for bdlcore from kronfluence.

Writes one ``.npz`` file per small classifier into ``Tests/Fixtures/influence/`` (plus a
README.md describing them). Each file holds the model (spec, parameters), the training data
(``X``, ``y``, ``outputs``, as in the other fixture sets), the query data (``X_query``,
``y_query``, ``outputs_query``) and the influence scores kronfluence computes with its K-FAC
and EK-FAC strategies for three Fisher variants and two damping values. The Swift tests read
these files; CI never needs PyTorch.

bdlcore's influence (DESIGN.md §4 curvature): for a query measurement m (here the query's NLL)
and a training example z_j,
    τ(z_q, z_j) = ∇m(θ*; z_q)ᵀ (G + λI)⁻¹ ∇ℓ(θ*; z_j),
with G the K-FAC / EK-FAC curvature SUMMED over the N training examples (weight block B ⊗ A,
A = mean a aᵀ, B = Σ g gᵀ; EK-FAC refits Λ_ij = Σ_n Σ_k ((Q_Bᵀ ∇W_{n,k} Q_A)_ij)²), ℓ the
per-example CrossEntropyLoss and exact damping 1/(λ_ij + λ) in the eigenbasis.

Conventions of kronfluence 1.0.1 (read from its source; all verified below):
- Factors are MEANS over the rows it has seen: activation covariance Σ a aᵀ / N, gradient
  covariance Σ g gᵀ / N, EK-FAC Λ / N (g: gradient of the Task's summed training loss with
  respect to the layer output). So its curvature is G / N.
- A Linear bias is folded into the weight: the input gets a trailing 1, the block is
  B ⊗ A_ext over [W | b] (out × (in + 1), row-major), A_ext = mean [a; 1][a; 1]ᵀ. bdlcore keeps
  a separate bias block B. The layouts agree only without biases.
- ``ScoreArguments.damping_factor`` d is ABSOLUTE, added to its (mean-normalised) eigenvalues:
  K-FAC 1/(α_j β_i + d), EK-FAC 1/(Λ_ij / N + d) — the same exact damping as bdlcore. Only
  ``damping_factor=None`` is relative (0.1 × the mean of each module's own eigenvalue matrix,
  a different value per layer); it is not used here.
- Scores have no sign flip: pairwise = ∇m_qᵀ (G/N + dI)⁻¹ ∇ℓ_j; self = ∇ℓ_jᵀ (G/N + dI)⁻¹ ∇ℓ_j
  (``use_measurement_for_self_influence=False``: the training loss on both sides).
Hence, on a bias-free model: kronfluence(d) = N × τ(λ = N·d). Stored: ``damping`` = d and
``lambda_bdlcore`` = N·d; the consumer checks score / N against τ at λ = N·d.

Fisher variants. kronfluence computes the gradient covariance from the Task's
``compute_train_loss(batch, model, sample=not use_empirical_fisher)``; what ``sample=True``
does is the Task's business (its examples draw one label per example from softmax). Stored:
- ``empirical``: ``use_empirical_fisher=True``, true labels (bdlcore's empirical Fisher);
- ``mc``: ``use_empirical_fisher=False``; the Task's ``sample=True`` loss is the NLL at ONE
  label per example drawn once from softmax(f) with the seeded generator and stored as
  ``mc_labels`` (the same labels in the covariance and the Λ pass). bdlcore equivalent, exact:
  the empirical-Fisher K-FAC / EK-FAC of (X, mc_labels), with training gradients at y;
- ``type2``: ``use_empirical_fisher=False`` with the factors fitted on the C-fold expanded
  data set {(x_n, c)}: the Task's ``sample=True`` loss is Σ_{n,c} √(C p_{n,c}) · CE(f(x_n), c)
  (p detached), whose output gradient per row is −√C · s_{n,c}, s_{n,c} = √p_c (e_c − p) the
  columns of S. kronfluence's row means over N·C rows then give A, B/N and Λ/N of the exact
  type-2 Fisher (DESIGN's K = C columns of S), i.e. the same mapping as above.
Scores always use the true labels (``sample=False``) on the N training examples.

Before writing, the script recomputes every score in plain float64 torch, independently of
kronfluence: per-example gradients with ``torch.func`` (vmap of grad), per-(example, column)
gradients from ``fixture_common.full_jacobian``, A and B from DESIGN.md §4 (the helpers of
``generate_kfac_fixtures.py``), eigendecompositions, EK-FAC Λ, the dense block-diagonal
curvature and a dense solve. It asserts that kronfluence's pairwise and self scores equal
N × τ(λ = N·d) (bias-free model; bdlcore's layout) or the same with kronfluence's appended-bias
layout (biased model) to 1e-10 relative, and that kronfluence's stored factors equal A, B/N
and Λ/N.

Requirements: torch, numpy, curvlinops and laplace-torch (as for the K-FAC fixtures) and
kronfluence, in a separate virtualenv (``.venv*/`` is gitignored). From the repository root::

    python3 -m venv .venv-fixtures
    .venv-fixtures/bin/pip install torch numpy curvlinops-for-pytorch==3.0.1 laplace-torch==0.3 \\
        kronfluence==1.0.1
    .venv-fixtures/bin/python scripts/generate_influence_fixtures.py

Deterministic: seeded ``torch.Generator`` per model (parameters, then X, y, then X_query,
y_query, then mc_labels), float64 everywhere (every kronfluence dtype argument set to
float64), CPU, one thread, fixed ZIP timestamps, no compression. kronfluence writes its
factors and scores to a temporary directory that is deleted afterwards.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fixture_common.py, run as a script

from fixture_common import (  # noqa: E402
    REPO_ROOT, assert_close, base_arrays, configure_torch, draw_data, full_jacobian,
    readme_file_section, seeded_model, write_fixture)

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit / torch.cuda.amp notices

from generate_kfac_fixtures import (  # noqa: E402  (plain-torch K-FAC reference)
    layer_quantities, output_vectors, reference_factors)
from kronfluence import Analyzer, FactorArguments, ScoreArguments, Task, prepare_model  # noqa: E402
from kronfluence.utils.dataset import DataLoaderKwargs  # noqa: E402

OUT_DIR_REL = "Tests/Fixtures/influence"
OUT_DIR = REPO_ROOT / OUT_DIR_REL

MAX_FILE_BYTES = 500_000
N_TRAIN = 24
N_QUERY = 5

# kronfluence's absolute damping_factor values d (bdlcore λ = N·d).
DAMPINGS = [1e-3, 1e-1]
STRATEGIES = ["kfac", "ekfac"]
FISHERS = ["empirical", "mc", "type2"]

# float64, tiny models: kronfluence and the dense reference agree to ~1e-14 relative.
RTOL = 1e-10

KRONFLUENCE_VERSION = importlib.metadata.version("kronfluence")
CURVLINOPS_VERSION = importlib.metadata.version("curvlinops-for-pytorch")

F64 = torch.float64
FACTOR_DTYPES = dict(activation_covariance_dtype=F64, gradient_covariance_dtype=F64,
                     eigendecomposition_dtype=F64, per_sample_gradient_dtype=F64,
                     lambda_dtype=F64)
SCORE_DTYPES = dict(query_gradient_svd_dtype=F64, per_sample_gradient_dtype=F64,
                    precondition_dtype=F64, score_dtype=F64)


def build_models() -> list[dict]:
    """Model definitions: name, seed, module, per-example input shape, likelihood, N."""
    return [
        dict(name="mlp_nobias_classification", seed=4001, likelihood="classification",
             n=N_TRAIN, input_shape=(6,), strategies=STRATEGIES, self_scores=True,
             model=lambda: nn.Sequential(nn.Linear(6, 8, bias=False), nn.Tanh(),
                                         nn.Linear(8, 4, bias=False))),
        dict(name="mlp_bias_classification", seed=4002, likelihood="classification",
             n=N_TRAIN, input_shape=(6,), strategies=["ekfac"], self_scores=False,
             model=lambda: nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))),
    ]


# ----------------------------------------------------------------------------------------
# kronfluence side
# ----------------------------------------------------------------------------------------

class ClassificationTask(Task):
    """Summed CrossEntropyLoss; ``sample=True`` as described for each Fisher variant."""

    def __init__(self, fisher: str) -> None:
        self.fisher = fisher

    def compute_train_loss(self, batch, model, sample=False):
        inputs, labels = batch
        logits = model(inputs)
        if not sample:  # true labels: empirical Fisher, and every score computation
            return F.cross_entropy(logits, labels, reduction="sum")
        if self.fisher == "mc":  # labels are the pre-drawn samples y ~ softmax(f)
            return F.cross_entropy(logits, labels, reduction="sum")
        if self.fisher == "type2":  # rows are (x_n, c) for every class c
            C = logits.shape[-1]
            p_c = torch.softmax(logits.detach(), dim=-1).gather(1, labels[:, None]).squeeze(1)
            w = (C * p_c).sqrt()
            return (w * F.cross_entropy(logits, labels, reduction="none")).sum()
        raise AssertionError(f"sample=True for the {self.fisher} variant")

    def compute_measurement(self, batch, model):
        inputs, labels = batch
        return F.cross_entropy(model(inputs), labels, reduction="sum")


def factor_dataset(fisher: str, X, y, y_mc, C: int) -> TensorDataset:
    if fisher == "empirical":
        return TensorDataset(X, y)
    if fisher == "mc":
        return TensorDataset(X, y_mc)
    n = X.shape[0]
    return TensorDataset(X.repeat_interleave(C, dim=0), torch.arange(C).repeat(n))


def run_kronfluence(model, fisher, strategies, X, y, Xq, yq, y_mc, C, self_scores, calls):
    """kronfluence scores and factors for one Fisher variant: {(strategy, d): ...}."""
    out = {}
    task = ClassificationTask(fisher)
    kmodel = prepare_model(copy.deepcopy(model), task)
    train, query = TensorDataset(X, y), TensorDataset(Xq, yq)
    fdata = factor_dataset(fisher, X, y, y_mc, C)
    with tempfile.TemporaryDirectory() as tmp:
        analyzer = Analyzer(analysis_name=f"influence_{fisher}", model=kmodel, task=task,
                            cpu=True, log_level=logging.ERROR, disable_tqdm=True,
                            output_dir=tmp)
        analyzer.set_dataloader_kwargs(DataLoaderKwargs(num_workers=0))
        for strategy in strategies:
            fargs = FactorArguments(strategy=strategy,
                                    use_empirical_fisher=(fisher == "empirical"),
                                    **FACTOR_DTYPES)
            analyzer.fit_all_factors(factors_name=strategy, dataset=fdata,
                                     per_device_batch_size=len(fdata), factor_args=fargs,
                                     overwrite_output_dir=True)
            calls[f"{strategy}__{fisher}__fit_all_factors"] = {
                "dataset": {"empirical": "TensorDataset(X, y)", "mc": "TensorDataset(X, mc_labels)",
                            "type2": "TensorDataset(X.repeat_interleave(C, 0), "
                                     "arange(C).repeat(N))"}[fisher],
                "per_device_batch_size": len(fdata), "factor_args": {
                    "strategy": fargs.strategy, "use_empirical_fisher": fargs.use_empirical_fisher}}
            assert fargs.to_dict() == calls["factor_args"] | calls[
                f"{strategy}__{fisher}__fit_all_factors"]["factor_args"]
            factors = {"activation_covariance": analyzer.load_covariance_matrices(strategy),
                       "lambda": (analyzer.load_lambda_matrices(strategy)
                                  if strategy == "ekfac" else None)}
            for d in DAMPINGS:
                sargs = ScoreArguments(damping_factor=d, **SCORE_DTYPES)
                name = f"{strategy}_{d:g}"
                analyzer.compute_pairwise_scores(
                    scores_name=name, factors_name=strategy, query_dataset=query,
                    train_dataset=train, per_device_query_batch_size=len(query),
                    per_device_train_batch_size=len(train), score_args=sargs,
                    overwrite_output_dir=True)
                pairwise = analyzer.load_pairwise_scores(name)["all_modules"].clone()
                selfs = None
                if self_scores:
                    analyzer.compute_self_scores(
                        scores_name=name + "_self", factors_name=strategy, train_dataset=train,
                        per_device_train_batch_size=len(train), score_args=sargs,
                        overwrite_output_dir=True)
                    selfs = analyzer.load_self_scores(name + "_self")["all_modules"].clone()
                out[(strategy, d)] = (pairwise, selfs, factors)
            calls[f"{strategy}__{fisher}__scores"] = {
                "compute_pairwise_scores": {
                    "query_dataset": "TensorDataset(X_query, y_query)",
                    "train_dataset": "TensorDataset(X, y)",
                    "per_device_query_batch_size": len(query),
                    "per_device_train_batch_size": len(train)},
                "compute_self_scores": ({"train_dataset": "TensorDataset(X, y)",
                                         "per_device_train_batch_size": len(train)}
                                        if self_scores else None),
                "score_args": {"damping_factor": DAMPINGS}}
    return out


# ----------------------------------------------------------------------------------------
# Independent reference (plain torch)
# ----------------------------------------------------------------------------------------

def per_example_loss_grads(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, P) gradients of each example's CrossEntropyLoss, parameter-vector order."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def single(p, x, t):
        return F.cross_entropy(functional_call(model, p, (x[None],)), t[None], reduction="sum")

    g = vmap(grad(single), in_dims=(None, 0, 0))(params, X, y)
    return torch.cat([g[k].reshape(X.shape[0], -1) for k in params], dim=1)


def layer_slices(model: nn.Sequential) -> list[tuple[int, slice, slice | None, int, int]]:
    """(index, weight slice, bias slice, out, in) of every Linear in parameter-vector order."""
    out, off = [], 0
    for i, m in enumerate(model):
        if isinstance(m, nn.Linear):
            w = slice(off, off + m.out_features * m.in_features)
            off = w.stop
            b = None
            if m.bias is not None:
                b = slice(off, off + m.out_features)
                off = b.stop
            out.append((i, w, b, m.out_features, m.in_features))
    return out


def to_layout(v: torch.Tensor, slices, layout: str) -> torch.Tensor:
    """Per-layer parameter blocks of v (..., P): bdlcore [vec W, b] or kronfluence vec[W | b]."""
    parts = []
    for _, w, b, o, i in slices:
        W = v[..., w].reshape(*v.shape[:-1], o, i)
        if b is None:
            parts.append(W.flatten(-2))
        elif layout == "bdlcore":
            parts += [W.flatten(-2), v[..., b]]
        else:
            parts.append(torch.cat([W, v[..., b, None]], dim=-1).flatten(-2))
    return torch.cat(parts, dim=-1)


def reference_curvature(model, X, outputs, labels, fisher, strategy, layout, jac):
    """Dense block-diagonal K-FAC / EK-FAC curvature (SUM over the data) in ``layout``, and the
    per-layer (A, B, Λ) of kronfluence's layout for the factor check."""
    C = outputs.shape[-1]
    vecs = output_vectors(outputs, labels, "classification",
                          "exact" if fisher == "type2" else "empirical")  # (N, C, K)
    g_nk = torch.einsum("ncp,nck->nkp", jac, vecs)  # per-(example, column) gradients
    blocks, factors = [], {}
    for idx, w, b, o, i in layer_slices(model):
        a, dz = layer_quantities(model, X, idx)
        g = torch.einsum("nck,ncro->nkro", vecs, dz)
        A, B = reference_factors(a, g, "expand")
        gW = g_nk[..., w].reshape(*g_nk.shape[:2], o, i)
        gb = g_nk[..., b] if b is not None else None
        if b is not None and layout == "kronfluence":
            a_ext = torch.cat([a, torch.ones_like(a[..., :1])], dim=-1)
            A = torch.einsum("nri,nrj->ij", a_ext, a_ext) / (a.shape[0] * a.shape[1])
            gW, gb = torch.cat([gW, gb[..., None]], dim=-1), None
        alpha, QA = torch.linalg.eigh(A)
        beta, QB = torch.linalg.eigh(B)
        lam = (QB.T @ gW @ QA).square().sum(dim=(0, 1))  # Σ_n Σ_k ((Q_Bᵀ ∇W Q_A)_ij)²
        factors[idx] = (A, B, lam)
        if strategy == "kfac":
            blocks.append(torch.kron(B, A))
        else:
            Q = torch.kron(QB, QA)
            blocks.append(Q @ torch.diag(lam.flatten()) @ Q.T)
        if gb is not None:  # bdlcore's separate bias block
            if strategy == "kfac":
                blocks.append(B)
            else:
                lam_b = (gb @ QB).square().sum(dim=(0, 1))
                blocks.append(QB @ torch.diag(lam_b) @ QB.T)
        assert C == outputs.shape[-1]
    return torch.block_diag(*blocks), factors


def reference_scores(Gd, g_query, g_train, lam):
    """τ pairwise (Q, N) and self (N) with (G + λI)⁻¹ by a dense solve."""
    M = Gd + lam * torch.eye(Gd.shape[0])
    sol = torch.linalg.solve(M, g_train.T)  # (P, N)
    return g_query @ sol, (g_train * sol.T).sum(dim=1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a.ravel())).astype(np.float64)
    rb = np.argsort(np.argsort(b.ravel())).astype(np.float64)
    ra -= ra.mean()
    rb -= rb.mean()
    return float(ra @ rb / np.sqrt((ra @ ra) * (rb @ rb)))


# ----------------------------------------------------------------------------------------

def generate(defn: dict, report: dict) -> dict[str, np.ndarray]:
    name, n = defn["name"], defn["n"]
    gen, model, spec, theta = seeded_model(defn)
    for p in model.parameters():  # the reference differentiates with torch.func only
        p.requires_grad_(False)
    X, outputs, y = draw_data(defn, model, gen)
    Xq, outputs_q, yq = draw_data({**defn, "n": N_QUERY}, model, gen)
    C = outputs.shape[-1]
    y_mc = torch.multinomial(torch.softmax(outputs, dim=-1), 1, generator=gen).squeeze(1)
    has_bias = any(isinstance(m, nn.Linear) and m.bias is not None for m in model)
    layout = "kronfluence" if has_bias else "bdlcore"  # identical without biases

    slices = layer_slices(model)
    jac = full_jacobian(model, X, theta)  # (N, C, P)
    g_train = per_example_loss_grads(model, X, y)
    g_query = per_example_loss_grads(model, Xq, yq)
    # per-example gradients = Jᵀ (p − onehot): ties torch.func to the Jacobian
    resid = torch.softmax(outputs, -1) - F.one_hot(y, C).to(F64)
    assert_close(torch.einsum("ncp,nc->np", jac, resid), g_train, f"{name}: gradients",
                 rtol=RTOL, atol=1e-12)

    arrays = base_arrays(defn, spec, theta, X, y, outputs,
                         {"kronfluence_version": KRONFLUENCE_VERSION})
    arrays.update({
        "X_query": Xq.numpy().copy(), "y_query": yq.numpy().copy(),
        "outputs_query": outputs_q.numpy().copy(), "mc_labels": y_mc.numpy().copy(),
        "damping": np.array(DAMPINGS, dtype=np.float64),
        "lambda_bdlcore": np.array([n * d for d in DAMPINGS], dtype=np.float64),
    })
    calls: dict = {"analyzer": {"cpu": True, "disable_tqdm": True, "output_dir": "<temporary>",
                                "disable_model_save": True},
                   "prepare_model": "prepare_model(copy.deepcopy(model), task)",
                   # the full argument dictionaries; each call below overrides the keys it lists
                   "factor_args": FactorArguments(**FACTOR_DTYPES).to_dict() | {
                       "strategy": "<per call>", "use_empirical_fisher": "<per call>"},
                   "score_args": ScoreArguments(**SCORE_DTYPES).to_dict() | {
                       "damping_factor": "<per call>"}}
    errs = {"scores_rel": 0.0, "factors": 0.0} | ({} if has_bias else {"self_rel": 0.0})
    spearmans = {}

    for fisher in FISHERS:
        labels = y_mc if fisher == "mc" else y
        kf = run_kronfluence(model, fisher, defn["strategies"], X, y, Xq, yq, y_mc, C,
                             defn["self_scores"], calls)
        for strategy in defn["strategies"]:
            Gd, factors = reference_curvature(model, X, outputs, labels, fisher, strategy,
                                              layout, jac)
            gq, gt = to_layout(g_query, slices, layout), to_layout(g_train, slices, layout)
            if has_bias:
                Gd_b, _ = reference_curvature(model, X, outputs, labels, fisher, strategy,
                                              "bdlcore", jac)
            # kronfluence's factors: A, B / N, Λ / N
            kfac_f = kf[(strategy, DAMPINGS[0])][2]
            cov = kfac_f["activation_covariance"]
            for idx, (A, B, lam) in factors.items():
                key = str(idx)
                nA = cov["num_activation_covariance_processed"][key].item()
                nB = cov["num_gradient_covariance_processed"][key].item()
                assert nA == nB == (n * C if fisher == "type2" else n), (nA, nB)
                A_k = cov["activation_covariance"][key] / nA
                B_k = cov["gradient_covariance"][key] / nB
                e = max(assert_close(A_k, A, f"{name}/{fisher}: A_{idx}", rtol=RTOL, atol=1e-12),
                        assert_close(B_k * n, B, f"{name}/{fisher}: B_{idx}", rtol=RTOL,
                                     atol=1e-12))
                if strategy == "ekfac":
                    lm = kfac_f["lambda"]
                    nL = lm["num_lambda_processed"][key].item()
                    assert nL == nA
                    e = max(e, assert_close(lm["lambda_matrix"][key] / nL * n, lam,
                                            f"{name}/{fisher}: Λ_{idx}", rtol=RTOL, atol=1e-12))
                errs["factors"] = max(errs["factors"], e)

            pw_all, self_all = [], []
            for d in DAMPINGS:
                pairwise, selfs, _ = kf[(strategy, d)]
                tau, tau_self = reference_scores(Gd, gq, gt, n * d)
                scale = tau.abs().max().item()
                assert_close(pairwise, n * tau, f"{name}/{strategy}/{fisher}/d={d}: pairwise",
                             rtol=RTOL, atol=RTOL * n * scale)
                errs["scores_rel"] = max(errs["scores_rel"],
                                         (pairwise - n * tau).abs().max().item() / (n * scale))
                pw_all.append(pairwise.numpy())
                if selfs is not None:
                    s_scale = tau_self.abs().max().item()
                    assert_close(selfs, n * tau_self, f"{name}/{strategy}/{fisher}/d={d}: self",
                                 rtol=RTOL, atol=RTOL * n * s_scale)
                    errs["self_rel"] = max(errs["self_rel"], (selfs - n * tau_self).abs().max()
                                           .item() / (n * s_scale))
                    self_all.append(selfs.numpy())
                if has_bias:  # bdlcore's separate-bias EK-FAC, for the Spearman check
                    tau_b, _ = reference_scores(Gd_b, to_layout(g_query, slices, "bdlcore"),
                                                to_layout(g_train, slices, "bdlcore"), n * d)
                    pw, tb = pairwise.numpy(), tau_b.numpy()
                    spearmans[f"{strategy}__{fisher}__d={d:g}"] = (
                        spearman(pw, tb), min(spearman(pw[q], tb[q]) for q in range(N_QUERY)))
            arrays[f"{strategy}__{fisher}__pairwise"] = np.stack(pw_all)
            if self_all:
                arrays[f"{strategy}__{fisher}__self"] = np.stack(self_all)

    conversions = {
        "score": "kronfluence(d) = N * tau(lambda = N * d)" + (
            " with kronfluence's appended-bias layout (not bdlcore's separate bias block); "
            "compare with bdlcore by rank correlation" if has_bias else ""),
        "N": n, "score_times": 1.0 / n, "lambda_times_damping": n,
        "factors": "A = kronfluence A; B = N * kronfluence B; Lambda = N * kronfluence Lambda",
    }
    arrays["conversions"] = np.array(json.dumps(conversions))
    arrays["calls"] = np.array(json.dumps(calls, separators=(",", ":")))
    report[name] = {"errs": errs, "spearman": spearmans, "has_bias": has_bias}
    return arrays


def write_readme(results, sizes, report) -> None:
    err_lines = [f"| `{nm}` | {r['errs']['scores_rel']:.1e} | "
                 + (f"{r['errs']['self_rel']:.1e}" if not r["has_bias"] else "—")
                 + f" | {r['errs']['factors']:.1e} |" for nm, r in report.items()]
    sp_lines = [f"| `{k}` | {v[0]:.4f} | {v[1]:.4f} |"
                for r in report.values() for k, v in r["spearman"].items()]
    d0, d1 = DAMPINGS
    lines = [
        "# Influence-function reference fixtures",
        "",
        "Pairwise and self-influence scores of small classifiers computed by kronfluence",
        f"{KRONFLUENCE_VERSION} (K-FAC and EK-FAC strategies), checked against an independent dense",
        "float64 evaluation of bdlcore's definition, so that the Swift tests need no PyTorch.",
        "",
        f"Made by `scripts/generate_influence_fixtures.py` with torch {torch.__version__} and",
        f"kronfluence {KRONFLUENCE_VERSION} (also stored in each file); the plain-torch K-FAC",
        f"reference comes from `scripts/generate_kfac_fixtures.py` (curvlinops {CURVLINOPS_VERSION}",
        "must be importable). Do not edit by hand. To regenerate, from the repository root:",
        "",
        "```sh",
        "python3 -m venv .venv-fixtures",
        f".venv-fixtures/bin/pip install torch numpy curvlinops-for-pytorch=={CURVLINOPS_VERSION} "
        f"laplace-torch==0.3 kronfluence=={KRONFLUENCE_VERSION}",
        ".venv-fixtures/bin/python scripts/generate_influence_fixtures.py",
        "```",
        "",
        "The script is deterministic (seeded generators, float64, CPU, one thread, fixed ZIP",
        "timestamps; reruns are byte-identical).",
        "",
        "## Definition and mapping",
        "",
        "bdlcore: τ(z_q, z_j) = ∇m(θ*; z_q)ᵀ (G + λI)⁻¹ ∇ℓ(θ*; z_j), m = ℓ = the example's",
        "CrossEntropyLoss (query at its own label), G the K-FAC or EK-FAC curvature of",
        "DESIGN.md §4 SUMMED over the N training examples, exact damping 1/(λ_ij + λ) in the",
        "eigenbasis (K-FAC: λ_ij = β_i α_j).",
        "",
        f"kronfluence {KRONFLUENCE_VERSION} (from its source, verified here):",
        "",
        "- its factors are means over the rows it saw: A = Σ a aᵀ / N (bdlcore's A), B = Σ g gᵀ / N",
        "  and EK-FAC Λ / N (bdlcore's B / N, Λ / N), so its curvature is G / N;",
        "- `ScoreArguments.damping_factor` d is absolute and added to those eigenvalues: K-FAC",
        "  1/(α_j β_i + d), EK-FAC 1/(Λ_ij / N + d). (Only `damping_factor=None` is relative:",
        "  0.1 × the mean of each module's eigenvalue matrix, one value per layer. Not used.)",
        "- no sign: pairwise = ∇m_qᵀ (G/N + dI)⁻¹ ∇ℓ_j; self = ∇ℓ_jᵀ (G/N + dI)⁻¹ ∇ℓ_j;",
        "- a Linear bias is appended to the input (A over [a; 1], one block B ⊗ A_ext on the",
        "  row-major vec of [W | b]); bdlcore has a separate bias block B.",
        "",
        "Hence, on a bias-free model, exactly: **kronfluence(d) = N × τ(λ = N·d)**. Check",
        "`pairwise / N` and `self / N` against bdlcore's τ at λ = `lambda_bdlcore` = N·`damping`.",
        "On the biased model the curvatures differ (bias folding), so compare rankings only.",
        "",
        "## Verification",
        "",
        "Before writing, the script recomputes every stored score in plain float64 torch:",
        "per-example loss gradients with `torch.func` (vmap of grad; checked equal to Jᵀ(p − onehot)",
        "with J from `fixture_common.full_jacobian`), per-(example, column) gradients J_nᵀ s_{n,k},",
        "A and B from DESIGN.md §4 (`generate_kfac_fixtures.py` helpers), `torch.linalg.eigh`,",
        "Λ_ij = Σ_n Σ_k ((Q_Bᵀ ∇W_{n,k} Q_A)_ij)², the dense block-diagonal curvature and a dense",
        "solve of (G + λI). Asserted: kronfluence's scores = N × τ(λ = N·d) to 1e-10 relative",
        "(max |difference| / max |N τ|), in bdlcore's layout for the bias-free model and in",
        "kronfluence's appended-bias layout for the biased one; its stored factors (read back",
        "with `load_covariance_matrices` / `load_lambda_matrices`) = A, B/N, Λ/N to 1e-10.",
        "",
        "| file | pairwise (rel.) | self (rel.) | factors (abs.) |",
        "| --- | --- | --- | --- |",
        *err_lines,
        "",
        "Rank agreement on `mlp_bias_classification` between kronfluence's EK-FAC scores and",
        "bdlcore's EK-FAC N × τ(λ = N·d) with a separate bias block (Spearman over all",
        f"{N_QUERY}×{N_TRAIN} pairs, and the smallest per-query-row value):",
        "",
        "| variant | Spearman (all) | Spearman (min row) |",
        "| --- | --- | --- |",
        *sp_lines,
        "",
        "## Fisher variants",
        "",
        "kronfluence builds its gradient covariance and Λ from the Task's",
        "`compute_train_loss(batch, model, sample=not use_empirical_fisher)`; `sample=True` is",
        "whatever the Task implements (kronfluence's examples draw one label per example from",
        "softmax, anew in every pass). There is no built-in all-classes (type-2) Fisher. Stored:",
        "",
        "- `empirical`: `use_empirical_fisher=True`, true labels. bdlcore: empirical Fisher.",
        "- `mc`: `use_empirical_fisher=False`; `sample=True` is the NLL at `mc_labels`, one label",
        "  per example drawn ONCE from softmax(f(x_n)) (seeded; the same labels in the covariance",
        "  and the Λ pass). bdlcore equivalent (exact): the empirical-Fisher K-FAC / EK-FAC of",
        "  (`X`, `mc_labels`), with the training gradients still at `y`.",
        "- `type2`: `use_empirical_fisher=False`, factors fitted on the C-fold expanded set",
        "  {(x_n, c)} (`X.repeat_interleave(C, 0)`, `arange(C).repeat(N)`) with",
        "  `sample=True` loss Σ √(C p_{n,c}) · CE(f(x_n), c), p detached: its output gradient is",
        "  −√C · s_{n,c} with s_{n,c} = √p_c (e_c − p), the columns of S, so the row means over",
        "  N·C rows are bdlcore's type-2 A, B / N and Λ / N (K = C). bdlcore: exact type-2 Fisher.",
        "",
        "Scores always use the true labels (`sample=False`) on the N training examples.",
        "",
        "## kronfluence calls",
        "",
        "```python",
        "model = prepare_model(copy.deepcopy(model), task)   # task: ClassificationTask(fisher)",
        "analyzer = Analyzer(analysis_name=..., model=model, task=task, cpu=True,",
        "                    log_level=logging.ERROR, disable_tqdm=True, output_dir=<temporary>)",
        "analyzer.set_dataloader_kwargs(DataLoaderKwargs(num_workers=0))",
        "factor_args = FactorArguments(strategy='kfac' | 'ekfac',",
        "    use_empirical_fisher=(fisher == 'empirical'), activation_covariance_dtype=float64,",
        "    gradient_covariance_dtype=float64, eigendecomposition_dtype=float64,",
        "    per_sample_gradient_dtype=float64, lambda_dtype=float64)",
        "analyzer.fit_all_factors(factors_name=strategy, dataset=<factor data set>,",
        "    per_device_batch_size=len(dataset), factor_args=factor_args)",
        "score_args = ScoreArguments(damping_factor=d, query_gradient_svd_dtype=float64,",
        "    per_sample_gradient_dtype=float64, precondition_dtype=float64, score_dtype=float64)",
        "analyzer.compute_pairwise_scores(scores_name=..., factors_name=strategy,",
        "    query_dataset=TensorDataset(X_query, y_query), train_dataset=TensorDataset(X, y),",
        "    per_device_query_batch_size=5, per_device_train_batch_size=24, score_args=score_args)",
        "analyzer.compute_self_scores(scores_name=..., factors_name=strategy,",
        "    train_dataset=TensorDataset(X, y), per_device_train_batch_size=24, score_args=score_args)",
        "# scores: analyzer.load_pairwise_scores(name)['all_modules'] (Q, N),",
        "#         analyzer.load_self_scores(name)['all_modules'] (N,)",
        "```",
        "",
        "The Task's `compute_train_loss(sample=False)` and `compute_measurement` are",
        "`F.cross_entropy(model(x), labels, reduction='sum')`; per-example gradients of the",
        "summed loss are the per-example NLL gradients. All other arguments are kronfluence's",
        "defaults (no AMP, no partitions, no low-rank query, no aggregation); `calls` in each file",
        "records the full argument dictionaries.",
        "",
        "## Format",
        "",
        "Each `.npz` is an uncompressed (stored) ZIP archive of `.npy` version 1.0 entries,",
        "little-endian, C order, like the other fixture sets. String keys are 0-d numpy unicode",
        "arrays (dtype `<U…`, UTF-32LE).",
        "",
        "## Keys",
        "",
        "Common keys (same meaning as in `Tests/Fixtures/engine/`): `spec`, `input_shape`,",
        "`likelihood`, `torch_version`, `kronfluence_version`, `parameters` (P,",
        "`parameters_to_vector`, drawn as `randn * 0.5`), and the TRAINING set: `X` (N, 6),",
        "`y` (N,) int64, `outputs` (N, C) = model(X).",
        "",
        f"- `X_query` ({N_QUERY}, 6), `y_query` ({N_QUERY},) int64, `outputs_query`: the query set, drawn",
        "  after `X`, `y` from the same generator.",
        "- `mc_labels` (N,) int64: the sampled labels of the `mc` variant (drawn after the queries).",
        f"- `damping` (2,): kronfluence's `damping_factor` d = {d0:g}, {d1:g} (index 0, 1 of the",
        f"  leading axis of every score key); `lambda_bdlcore` (2,) = N·d = {N_TRAIN * d0:g},"
        f" {N_TRAIN * d1:g}.",
        "- `<strategy>__<fisher>__pairwise` (2, N_query, N): kronfluence's pairwise scores,",
        "  `[damping index, query, train]`; strategy ∈ {kfac, ekfac}, fisher ∈ {empirical, mc,",
        "  type2}. `mlp_bias_classification`: `ekfac` only.",
        "- `<strategy>__<fisher>__self` (2, N): self-influence scores (`mlp_nobias_classification`",
        "  only).",
        "- `conversions`: JSON, the mapping (`score_times` = 1/N, `lambda_times_damping` = N).",
        "- `calls`: compact JSON: the full `FactorArguments` / `ScoreArguments` dictionaries",
        "  (`factor_args`, `score_args`) and, per call, the keys it sets and its data sets.",
        "",
        "## Files",
        "",
    ]
    for nm, arrays in results.items():
        lines += readme_file_section(nm, arrays, sizes[nm], f", N_query = {N_QUERY}")
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
        r = report[defn["name"]]
        print(f"{OUT_DIR_REL}/{path.name}: {size:,} bytes, P = {arrays['parameters'].shape[0]}; "
              "max errors: " + ", ".join(f"{k} {v:.1e}" for k, v in r["errs"].items()))
        for k, v in r["spearman"].items():
            print(f"  Spearman vs bdlcore layout {k}: all {v[0]:.4f}, min row {v[1]:.4f}")
    runtime = time.perf_counter() - t0
    write_readme(results, sizes, report)
    print(f"{OUT_DIR_REL}/README.md written; torch {torch.__version__}, kronfluence "
          f"{KRONFLUENCE_VERSION}; {runtime:.1f} s")


if __name__ == "__main__":
    main()
