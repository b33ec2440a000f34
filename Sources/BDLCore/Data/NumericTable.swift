/// A numeric CSV file with one header line: the format of the datasets in `data/`.
public struct NumericTable: Sendable {
  /// Column names from the header line.
  public let columnNames: [String]
  /// The values, one row per data line.
  public let values: Matrix

  /// Reads `path`. Blank lines are skipped; every other line must have one number per column.
  /// - Throws: `.ioError` (cannot open or read), `.corruptData` naming the line and field that is
  ///   not a number or has the wrong number of fields.
  public init(contentsOf path: String) throws(BDLError) {
    try self.init(parsing: String(decoding: fileContents(path), as: UTF8.self), source: path)
  }

  /// Parses CSV text; `source` names it in error messages.
  public init(parsing text: String, source: String = "text") throws(BDLError) {
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
      $0.hasSuffix("\r") ? $0.dropLast() : $0
    }
    guard let header = lines.first, !header.isEmpty else {
      throw .corruptData("\(source): missing header line")
    }
    lines.removeFirst()
    let names = header.split(separator: ",", omittingEmptySubsequences: false).map {
      String($0).trimmingSpaces()
    }
    var elements: [Double] = []
    var rows = 0
    for (offset, line) in lines.enumerated() where !line.allSatisfy({ $0 == " " }) {
      let fields = line.split(separator: ",", omittingEmptySubsequences: false)
      guard fields.count == names.count else {
        throw .corruptData("\(source): line \(offset + 2) has \(fields.count) fields, the header has \(names.count)")
      }
      for (column, field) in fields.enumerated() {
        guard let value = Double(String(field).trimmingSpaces()), value.isFinite else {
          throw .corruptData("\(source): line \(offset + 2), column \(names[column]): '\(field)' is not a finite number")
        }
        elements.append(value)
      }
      rows += 1
    }
    self.columnNames = names
    self.values = try Matrix(rows: rows, columns: names.count, elements: elements)
  }
}

extension String {
  fileprivate func trimmingSpaces() -> String {
    var s = Substring(self)
    while s.first == " " { s.removeFirst() }
    while s.last == " " { s.removeLast() }
    return String(s)
  }
}
