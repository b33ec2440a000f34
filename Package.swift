// swift-tools-version:6.0
//
// bdlcore: Bayesian-deep-learning numerics (K-FAC, Laplace evidence, influence, pruning) in Swift,
// exported through the C ABI in include/bdlcore.h.
//
// Products:
//   BDLCore  — the Swift library (`import BDLCore`)
//   bdlcore  — libbdlcore.so, the C ABI; ship it built with `-Xswiftc -static-stdlib` so that it
//              needs no Swift runtime on the user's machine
//   bdl      — the command-line tool (`bdl demo` runs the main job)
//
// No unsafeFlags anywhere: the package must stay usable as a dependency of other packages.
import PackageDescription

let package = Package(
  name: "bdlcore",
  products: [
    .library(name: "BDLCore", targets: ["BDLCore"]),
    .library(name: "bdlcore", type: .dynamic, targets: ["BDLCoreC"]),
    .executable(name: "bdl", targets: ["bdl"]),
  ],
  targets: [
    // OpenBLAS and LAPACKE, loaded on first use (see Sources/CBLASLAPACK/include/cblaslapack.h).
    .target(
      name: "CBLASLAPACK",
      linkerSettings: [.linkedLibrary("dl"), .linkedLibrary("pthread")]
    ),
    // The pure Swift numerics.
    .target(name: "BDLCore", dependencies: ["CBLASLAPACK"]),
    // The hand-written C header, imported by the export layer so that the compiler checks every
    // @c @implementation against its declaration.
    .systemLibrary(name: "CBDLCore", path: "include"),
    // The export layer: validate, convert, call BDLCore, map errors. Nothing else.
    .target(name: "BDLCoreC", dependencies: ["BDLCore", "CBDLCore"]),
    .executableTarget(name: "bdl", dependencies: ["BDLCore"]),
    .testTarget(name: "BDLCoreTests", dependencies: ["BDLCore", "bdl", "CBDLCore"]),
  ],
  swiftLanguageModes: [.v6]
)
