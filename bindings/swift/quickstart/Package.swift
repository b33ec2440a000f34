// swift-tools-version:6.0
// A user's package that depends on bdlcore: the Swift quickstart of the README, built and run by
// `make test` so that the package keeps working as a dependency.
import PackageDescription

let package = Package(
  name: "Quickstart",
  dependencies: [.package(name: "bdlcore", path: "../../..")],
  targets: [
    .executableTarget(name: "Quickstart", dependencies: [.product(name: "BDLCore", package: "bdlcore")])
  ]
)
