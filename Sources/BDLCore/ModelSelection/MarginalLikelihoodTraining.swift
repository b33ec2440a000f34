#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Marginal-likelihood training (online empirical Bayes, Immer et al. 2021): MAP steps on
///   Σ_n NLL_n + ½·θᵀ·diag(δ)·θ
/// alternate with hyperparameter steps. Every `frequency` epochs after `burnin` epochs, the Laplace
/// posterior is refitted at the current θ and the log marginal likelihood
///   log p(D) ≈ log p(D|θ*) − ½[log det P − log det P0] − ½ θ*ᵀ P0 θ*
/// is maximised over log δ (and log σ for regression) — solved to stationarity with the analytic
/// gradients (`Laplace.optimizePriorPrecision`) rather than stepped. The new δ (and σ) shape the
/// following MAP steps. The parameters with the best evidence seen at a hyperparameter step are
/// kept: no validation set is needed.
///
/// What differs from laplace-torch's `marglik_training`: it takes `n_hypersteps` = 10 Adam steps
/// (learning rate 0.1) on the hyperparameters per refit, which move each log δ by at most ~1 per
/// refit and stop wherever they end; here each refit's optimum is found to ‖∇‖ < `tolerance`,
/// usually in under 20 Newton (grouped priors) or L-BFGS (parameter- and unit-wise) iterations,
/// each far cheaper than a refit — so the prior tracks θ from the first step on.
/// The MAP optimiser (its Adam moments and schedule) persists across hyperparameter steps, as in
/// laplace-torch.
public struct MarginalLikelihoodTraining: Sendable {
  /// The shape of the prior precision the evidence tunes.
  public enum Prior: Int, Sendable, CaseIterable {
    /// One δ for every parameter.
    case scalar = 0
    /// One δ per parameter tensor (laplace-torch's default "layerwise").
    case layerwise = 1
    /// One δ per parameter.
    case diagonal = 2
    /// δ_ij = a_i·b_j per weight, per element for biases (see `UnitwisePrior`).
    case unitwise = 3

    /// The prior's layout as a `PriorStructure` (nil for unit-wise, a parametrisation of a
    /// per-parameter prior rather than a layout of its own).
    public var structure: PriorStructure? {
      switch self {
      case .scalar: .scalar
      case .layerwise: .layerwise
      case .diagonal: .diagonal
      case .unitwise: nil
      }
    }
  }

  /// What each hyperparameter step maximises.
  public enum Objective: Sendable, Equatable {
    /// The Laplace evidence of the refitted posterior (`laplace.structure`): the default.
    case laplace
    /// The NTK lower bound on the full-GGN linearised-Laplace evidence (`NTKEvidenceBound`)
    /// with these options — batches of B examples (nil: all, the exact full-GGN evidence),
    /// optionally class-grouped or with independent outputs. Its kernels are (B·C)² per batch
    /// instead of P², so it scales to models whose full GGN is out of reach. Needs a scalar or
    /// layerwise prior. The partition is redrawn at every step (seed + epoch), so over the run
    /// the steps see different batches, as the paper's stochastic estimator does.
    case ntkBound(NTKEvidenceBound.Options)
  }

  public struct Options: Sendable {
    /// The MAP optimiser: optimizer, learning rate, schedule, epochs, batch size, seed, mask.
    /// `training.priorPrecision` is the initial δ (default 1, laplace-torch's `prior_prec_init`).
    public var training: TrainingOptions = {
      var options = TrainingOptions()
      options.priorPrecision = [1]
      return options
    }()
    /// The posterior refitted at each hyperparameter step (default K-FAC expand, exact Fisher).
    /// Its `subset` must be `.all`: the prior covers every parameter.
    public var laplace = Laplace.FitOptions()
    public var prior: Prior = .layerwise
    /// F: a hyperparameter step after every F-th epoch. Default 1 (laplace-torch's
    /// `marglik_frequency`): the evidence follows θ closely; a larger F saves refits.
    public var frequency = 1
    /// Epochs of MAP training at the initial δ before the first hyperparameter step. Default 0,
    /// as laplace-torch.
    public var burnin = 0
    /// Regression: tune σ together with δ (default true, laplace-torch's `fix_sigma_noise=False`).
    public var optimizeSigma = true
    /// The initial σ (regression; default 1).
    public var sigma = 1.0
    /// T of the likelihood in the evidence (h = 1/(σ²T) or 1/T); 1 is the Bayesian evidence.
    public var temperature = 1.0
    /// Stationarity of each hyperparameter solve: ‖∂E/∂(log δ, log σ)‖ below it (default 1e−6:
    /// the next MAP steps move θ, so more digits of a transient optimum buy nothing).
    public var tolerance = 1e-6
    /// Iterations allowed per hyperparameter solve (default 100).
    public var maxHyperparameterIterations = 100
    /// What the hyperparameter steps maximise (default the Laplace evidence).
    public var objective: Objective = .laplace
    public init() {}
  }

  /// One epoch's report. `logMarginalLikelihood` is set after the epochs with a hyperparameter step.
  public struct Progress: Sendable, Equatable {
    public let epoch: Int
    public let epochs: Int
    /// Mean minibatch MAP objective over the epoch (see `TrainingProgress`).
    public let objective: Double
    public let meanNegativeLogLikelihood: Double
    /// The objective (the evidence, or the NTK bound) at the optimised hyperparameters of this
    /// epoch's step (nil: no step).
    public let logMarginalLikelihood: Double?
    /// The hyperparameters the next epochs train with.
    public let hyperparameters: LaplaceHyperparameters
  }

  /// The posterior at the kept parameters (fitted there, with the evidence-optimal hyperparameters).
  public let laplace: Laplace
  public let history: [Progress]
  /// The epoch whose parameters were kept (0: no hyperparameter step happened, the final θ is kept).
  public let bestEpoch: Int
  /// The objective's value at the kept parameters (−∞ without a hyperparameter step): for the
  /// Laplace objective the posterior's evidence, for the NTK objective the bound.
  public let bestObjective: Double
  public var logMarginalLikelihood: Double { (try? laplace.logMarginalLikelihood()) ?? -.infinity }

  /// Trains `model` in place and returns the posterior at the kept parameters.
  /// `progress` is called after every epoch; returning false stops after that epoch.
  /// - Throws: bad options or data before anything changes; `.notConverged` if MAP training
  ///   diverges (the model is then restored to its parameters before the call).
  public static func train(
    _ model: inout Sequential, inputs x: Tensor, targets: Targets, likelihood: LaplaceLikelihood,
    options: Options = .init(), progress: ((Progress) -> Bool)? = nil
  ) throws(BDLError) -> MarginalLikelihoodTraining {
    guard options.frequency >= 1 else { throw .invalidArgument("marglik frequency = \(options.frequency); it must be ≥ 1") }
    guard options.burnin >= 0 else { throw .invalidArgument("burn-in = \(options.burnin); it must be ≥ 0") }
    guard options.laplace.subset == .all else {
      throw .invalidArgument("marginal-likelihood training tunes the prior of every parameter: use subset all")
    }
    guard options.tolerance.isFinite, options.tolerance > 0 else { throw .invalidArgument("tolerance = \(options.tolerance); it must be > 0") }
    guard options.maxHyperparameterIterations >= 1 else {
      throw .invalidArgument("max hyperparameter iterations = \(options.maxHyperparameterIterations); it must be ≥ 1")
    }
    let unitwise = options.prior == .unitwise ? try UnitwisePrior(shapes: model.layers.flatMap(\.parameterShapes)) : nil
    if case .ntkBound(let bound) = options.objective {
      guard options.prior == .scalar || options.prior == .layerwise else {
        throw .invalidArgument("the NTK bound needs a scalar or layerwise prior (its kernel is Σ_t K_t/δ_t)")
      }
      if let b = bound.batchSize, b < 1 { throw .invalidArgument("bound batch size = \(b); it must be ≥ 1") }
      guard !bound.groupByClass || likelihood == .classification else {
        throw .invalidArgument("grouping the bound's batches by class needs classification")
      }
    }
    guard try model.expandPriorPrecision(options.training.priorPrecision).allSatisfy({ $0 > 0 }) else {
      throw .invalidArgument("the initial prior precision must be > 0 (the evidence needs a proper prior)")
    }
    guard options.sigma.isFinite, options.sigma > 0, options.temperature.isFinite, options.temperature > 0 else {
      throw .invalidArgument("sigma = \(options.sigma) and temperature = \(options.temperature) must be finite and > 0")
    }
    var hyperparameters = LaplaceHyperparameters(
      priorPrecision: options.training.priorPrecision, sigma: options.sigma, temperature: options.temperature)
    let mapLikelihood = { (sigma: Double) throws(BDLError) -> any Likelihood in
      likelihood == .classification ? CategoricalLikelihood() : try GaussianLikelihood(sigma: sigma)
    }
    var trainer = try MAPTrainer(model: model, inputs: x, targets: targets, likelihood: try mapLikelihood(options.sigma), options: options.training)

    let original = model.parameters
    var history: [Progress] = []
    var best: (evidence: Double, epoch: Int, parameters: [Double], laplace: Laplace)?
    do throws(BDLError) {
      for epoch in 1...max(options.training.epochs, 1) where options.training.epochs > 0 {
        let report = try trainer.runEpoch(&model, inputs: x, targets: targets, likelihood: try mapLikelihood(hyperparameters.sigma))
        var evidence: Double?
        if epoch > options.burnin && (epoch - options.burnin) % options.frequency == 0 {
          let withSigma = options.optimizeSigma && likelihood == .regression
          switch options.objective {
          case .laplace:
            var laplace = try Laplace.fit(
              model: model, inputs: x, targets: targets, likelihood: likelihood, options: options.laplace,
              hyperparameters: hyperparameters)
            let result: Laplace.EvidenceMaximization
            if let structure = options.prior.structure {
              result = try laplace.optimizePriorPrecision(
                structure: structure, optimizeSigma: withSigma, tolerance: options.tolerance,
                maxIterations: options.maxHyperparameterIterations)
            } else if let unitwise {
              result = try laplace.optimizePriorPrecision(
                unitwise: unitwise, optimizeSigma: withSigma, tolerance: options.tolerance,
                maxIterations: options.maxHyperparameterIterations)
            } else {
              throw .internal("a unit-wise prior without its layout")
            }
            hyperparameters = result.hyperparameters
            evidence = result.logMarginalLikelihood
            if best == nil || result.logMarginalLikelihood > best!.evidence {
              best = (result.logMarginalLikelihood, epoch, model.parameters, laplace)
            }
          case .ntkBound(var boundOptions):
            boundOptions.seed = boundOptions.seed &+ UInt64(epoch)
            let bound = try NTKEvidenceBound(model: model, inputs: x, targets: targets, likelihood: likelihood, options: boundOptions)
            // Start from the current δ as one value per tensor (or one): geometric means where it is finer.
            guard let structure = options.prior.structure else { throw .internal("the NTK bound with a unit-wise prior") }
            var start = hyperparameters
            let perParameter = try bound.groups.perParameter(priorPrecision: start.priorPrecision)
            start.priorPrecision = PriorParametrization(structure, groups: bound.groups)
              .initial(fromPerParameter: perParameter, groups: bound.groups).map { exp($0) }
            let result = try bound.maximize(
              from: start, optimizeSigma: withSigma, tolerance: options.tolerance, maxIterations: options.maxHyperparameterIterations)
            hyperparameters = result.hyperparameters
            evidence = result.value
            if best == nil || result.value > best!.evidence {
              // The posterior returned is fitted only where the kept parameters change.
              let laplace = try Laplace.fit(
                model: model, inputs: x, targets: targets, likelihood: likelihood, options: options.laplace,
                hyperparameters: hyperparameters)
              best = (result.value, epoch, model.parameters, laplace)
            }
          }
          try trainer.setPriorPrecision(hyperparameters.priorPrecision, for: model)
        }
        let entry = Progress(
          epoch: epoch, epochs: options.training.epochs, objective: report.objective,
          meanNegativeLogLikelihood: report.meanNegativeLogLikelihood, logMarginalLikelihood: evidence,
          hyperparameters: hyperparameters)
        history.append(entry)
        if let progress, !progress(entry) { break }
      }
    } catch {
      model.parameters = original
      throw error
    }
    if let best {
      model.parameters = best.parameters
      return MarginalLikelihoodTraining(laplace: best.laplace, history: history, bestEpoch: best.epoch, bestObjective: best.evidence)
    }
    // No hyperparameter step ran (too few epochs after the burn-in): the posterior at the final θ.
    let laplace = try Laplace.fit(
      model: model, inputs: x, targets: targets, likelihood: likelihood, options: options.laplace,
      hyperparameters: hyperparameters)
    return MarginalLikelihoodTraining(laplace: laplace, history: history, bestEpoch: 0, bestObjective: -.infinity)
  }
}
