"""Influence scores against kronfluence on the same data, in the same run.

Workload (issue: influence): a 784-256-256-10 ReLU MLP, N = 2,000 seeded random training inputs
and labels, 100 queries; EK-FAC with the empirical Fisher (true labels; deterministic in both
libraries), float64, CPU, as many threads as OpenBLAS. End to end: fit the curvature, then the
100 × 2,000 pairwise scores of the query loss.

kronfluence 1.0.1 averages its curvature over N (our G/N) and adds an absolute damping d to
that; its score at d equals N × ours at λ = N·d (verified on the stored fixtures). The benchmark
uses d = 1e-3, λ = N·d, and prints the largest relative difference between kronfluence's scores
and N × bdlcore's: the model has biases, which kronfluence folds into the input (one block per
layer) where we keep a separate bias block, so the two differ slightly; Spearman correlation
over all pairs is printed as well.

Needs torch and kronfluence (`pip install kronfluence==1.0.1` into the fixtures virtualenv);
without them it says so and exits 0.
"""
import copy
import logging
import sys
import tempfile

import numpy as np

import bdlcore
from _common import configure_torch, median_run, mlp_784

N, QUERIES, BATCH, DAMPING = 2000, 100, 256, 1e-3


def spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main():
    try:
        import torch
        import torch.nn.functional as F
        from kronfluence import Analyzer, FactorArguments, ScoreArguments, Task, prepare_model
        from kronfluence.utils.dataset import DataLoaderKwargs
    except ImportError:
        print("bench_influence: torch and kronfluence are not importable here; run with the fixtures virtualenv.")
        return 0
    threads = configure_torch(torch)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((N, 784)), rng.integers(0, 10, N)
    Xq, yq = rng.standard_normal((QUERIES, 784)), rng.integers(0, 10, QUERIES)
    ours = mlp_784()
    theirs = ours.to_torch()

    class ClassificationTask(Task):
        def compute_train_loss(self, batch, model, sample=False):
            inputs, labels = batch
            return F.cross_entropy(model(inputs), labels, reduction="sum")

        def compute_measurement(self, batch, model):
            inputs, labels = batch
            return F.cross_entropy(model(inputs), labels, reduction="sum")

    f64 = torch.float64
    train = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    query = torch.utils.data.TensorDataset(torch.from_numpy(Xq), torch.from_numpy(yq))

    def run_kronfluence():
        task = ClassificationTask()
        model = prepare_model(copy.deepcopy(theirs), task)
        with tempfile.TemporaryDirectory() as folder:
            analyzer = Analyzer(analysis_name="bench", model=model, task=task, cpu=True, log_level=logging.ERROR,
                                disable_tqdm=True, output_dir=folder)
            analyzer.set_dataloader_kwargs(DataLoaderKwargs(num_workers=0))
            factor_args = FactorArguments(strategy="ekfac", use_empirical_fisher=True, activation_covariance_dtype=f64,
                                          gradient_covariance_dtype=f64, eigendecomposition_dtype=f64,
                                          per_sample_gradient_dtype=f64, lambda_dtype=f64)
            analyzer.fit_all_factors(factors_name="ekfac", dataset=train, per_device_batch_size=BATCH,
                                     factor_args=factor_args, overwrite_output_dir=True)
            score_args = ScoreArguments(damping_factor=DAMPING, query_gradient_svd_dtype=f64, per_sample_gradient_dtype=f64,
                                        precondition_dtype=f64, score_dtype=f64)
            analyzer.compute_pairwise_scores(scores_name="scores", factors_name="ekfac", query_dataset=query,
                                             train_dataset=train, per_device_query_batch_size=QUERIES,
                                             per_device_train_batch_size=BATCH, score_args=score_args,
                                             overwrite_output_dir=True)
            return analyzer.load_pairwise_scores("scores")["all_modules"].numpy().copy()

    def run_bdlcore():
        with bdlcore.Influence(ours, X, y, likelihood="classification", curvature="ekfac", fisher="empirical",
                               damping=N * DAMPING, relative_damping=False, batch_size=BATCH, progress=False) as influence:
            return influence.scores(Xq, yq)

    t_theirs, theirs_scores = median_run(run_kronfluence)
    t_ours, ours_scores = median_run(run_bdlcore)
    difference = np.abs(theirs_scores - N * ours_scores).max() / np.abs(theirs_scores).max()
    print(f"threads: {threads}; EK-FAC (empirical Fisher) influence of 784-256-256-10, N = {N} training × {QUERIES} queries, "
          f"kronfluence d = {DAMPING:g} ≡ bdlcore λ = {N * DAMPING:g}")
    print(f"{'anchor':<24} {'anchor s':>9} {'bdlcore s':>10} {'ratio':>6}")
    print(f"{'kronfluence 1.0.1':<24} {t_theirs:>9.3f} {t_ours:>10.3f} {t_theirs / t_ours:>6.2f}")
    print(f"scores: max |kronfluence − N·bdlcore| / max |kronfluence| = {difference:.2e} (bias layouts differ); "
          f"Spearman over all pairs {spearman(theirs_scores.ravel(), ours_scores.ravel()):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
