import BDLCore
import CBDLCore
import Testing

@Suite("Library facts: version, BLAS kernel, data files")
struct LibraryTests {
  @Test("the Swift version equals the header's macros")
  func version() {
    #expect(Version.major == Int(BDL_VERSION_MAJOR))
    #expect(Version.minor == Int(BDL_VERSION_MINOR))
    #expect(Version.patch == Int(BDL_VERSION_PATCH))
  }

  @Test("OpenBLAS runs the best kernel family the CPU supports")
  func kernel() throws {
    let info = try BLASInfo.current()
    #expect(!info.core.isEmpty)
    #expect(info.threads >= 1)
    #expect(info.usesBestKernelForCPU, "core \(info.core) (source \(info.coreSource), requested '\(info.requestedCore)') on a CPU with AVX-512: \(BLASInfo.cpuHasAVX512), AVX2: \(BLASInfo.cpuHasAVX2)")
  }

  @Test("CSV tables: values, and named errors for corrupt lines and missing files")
  func tables() throws {
    let table = try NumericTable(parsing: "a,b\n1,2\n 3 , 4.5\n\n", source: "t")
    #expect(table.columnNames == ["a", "b"])
    #expect(table.values == (try Matrix([[1, 2], [3, 4.5]])))
    #expect(throws: BDLError.corruptData("t: line 3 has 1 fields, the header has 2")) {
      try NumericTable(parsing: "a,b\n1,2\n3\n", source: "t")
    }
    #expect(throws: BDLError.corruptData("t: line 2, column b: 'x' is not a finite number")) {
      try NumericTable(parsing: "a,b\n1,x\n", source: "t")
    }
    #expect(throws: BDLError.self) { try NumericTable(parsing: "", source: "t") }
    #expect {
      try NumericTable(contentsOf: repositoryRoot + "/data/no-such-file.csv")
    } throws: { error in
      guard case .ioError(let message) = error as? BDLError else { return false }
      return message.contains("no-such-file.csv")
    }
    let diabetes = try NumericTable(contentsOf: repositoryRoot + "/data/diabetes.csv")
    #expect(diabetes.values.rows == 442 && diabetes.values.columns == 11)
    // First patient as published by Efron et al.: age 59, sex 2, BMI 32.1, …, progression 151.
    #expect(diabetes.values[0, 0] == 59 && diabetes.values[0, 2] == 32.1 && diabetes.values[0, 10] == 151)
  }
}
