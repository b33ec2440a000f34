/// A dataset shipped in `data/` (a numeric CSV whose last column is the target), split the one
/// fixed way every part of bdlcore uses: rows with index i % 5 == 4 (0-based) are the test set.
/// A deterministic rule rather than a seeded shuffle, so that the C, Python and Swift loaders and
/// every test see the same examples without sharing a generator.
public struct DatasetSplit: Sendable {
  /// Feature columns' names (the header without the target's).
  public let featureNames: [String]
  public let trainInputs: Matrix
  public let trainTargets: [Double]
  public let testInputs: Matrix
  public let testTargets: [Double]

  /// Splits `table` (features, then the target in the last column).
  public init(_ table: NumericTable) throws(BDLError) {
    let data = table.values
    guard data.columns >= 2, data.rows >= 5 else {
      throw .corruptData("dataset: expected ≥ 5 rows of features and a target, got \(data.rows) × \(data.columns)")
    }
    let d = data.columns - 1
    func rows(_ indices: [Int]) -> (Matrix, [Double]) {
      var x = Matrix(rows: indices.count, columns: d)
      for (i, row) in indices.enumerated() {
        for j in 0..<d { x[i, j] = data[row, j] }
      }
      return (x, indices.map { data[$0, d] })
    }
    (trainInputs, trainTargets) = rows((0..<data.rows).filter { $0 % 5 != 4 })
    (testInputs, testTargets) = rows((0..<data.rows).filter { $0 % 5 == 4 })
    featureNames = Array(table.columnNames.prefix(d))
  }

  /// Reads and splits `<directory>/<name>.csv`.
  public init(named name: String, in directory: String) throws(BDLError) {
    try self.init(NumericTable(contentsOf: directory + "/" + name + ".csv"))
  }

  /// Targets as class labels; `.corruptData` if one is not an integer in 0..<classes.
  public static func labels(_ targets: [Double], classes: Int) throws(BDLError) -> [Int] {
    try targets.enumerated().map { (i, t) throws(BDLError) -> Int in
      guard t == t.rounded(), t >= 0, t < Double(classes) else {
        throw .corruptData("target \(t) of row \(i) is not a class label in 0..<\(classes)")
      }
      return Int(t)
    }
  }
}
