import BDLCore

#if canImport(Glibc)
import Glibc
#endif

/// bdl — bdlcore's command-line tool.
let usage = """
  usage: bdl demo [--data DIR] [--report PATH]
                                 run the main job on the datasets in DIR (default: ./data, or the
                                 data folder of the source tree the binary was built in) and write
                                 its calibration report to PATH (default: demo-report.html)
         bdl blas-info           show the OpenBLAS core, threads and libraries in use
         bdl version             print the library version
  """

/// The data folder: --data, else ./data, else <repo>/data found from the executable's path.
func dataDirectory(_ arguments: [String]) -> String {
  if let flag = arguments.firstIndex(of: "--data"), flag + 1 < arguments.count { return arguments[flag + 1] }
  if access("data/diabetes.csv", R_OK) == 0 { return "data" }
  var buffer = [UInt8](repeating: 0, count: 4096)
  let length = buffer.withUnsafeMutableBufferPointer { p in
    p.withMemoryRebound(to: CChar.self) { readlink("/proc/self/exe", $0.baseAddress!, $0.count - 1) }
  }
  if length > 0 {
    // <repo>/.build/<config>/bdl, or <repo>/.build/<triple>/<config>/bdl once symlinks are resolved.
    var parts = String(decoding: buffer[0..<length], as: UTF8.self).split(separator: "/", omittingEmptySubsequences: false)
    for _ in 0..<4 where parts.count > 1 {
      parts.removeLast()
      let candidate = parts.joined(separator: "/") + "/data"
      if access(candidate + "/diabetes.csv", R_OK) == 0 { return candidate }
    }
  }
  return "data"
}

/// The value of `--report`, else `demo-report.html` in the current directory; nil if the flag
/// has no value.
func reportPath(_ arguments: [String]) -> String? {
  guard let flag = arguments.firstIndex(of: "--report") else { return "demo-report.html" }
  guard flag + 1 < arguments.count, !arguments[flag + 1].isEmpty, !arguments[flag + 1].hasPrefix("--") else { return nil }
  return arguments[flag + 1]
}

let arguments = Array(CommandLine.arguments.dropFirst())
do throws(BDLError) {
  switch arguments.first {
  case "demo":
    guard let report = reportPath(arguments) else {
      print(usage)
      exit(2)
    }
    try Demo.run(dataDirectory: dataDirectory(arguments), reportPath: report)
  case "blas-info":
    let info = try BLASInfo.current()
    print("core: \(info.core)\nrequested core: \(info.requestedCore)\ncore source: \(info.coreSource)")
    print("threads: \(info.threads)\nOpenBLAS: \(info.openBLASLibrary)\nLAPACKE: \(info.lapackeLibrary)\nconfig: \(info.config)")
  case "version":
    print(Version.string)
  default:
    print(usage)
    exit(arguments.isEmpty || arguments.first == "--help" || arguments.first == "-h" ? 0 : 2)
  }
} catch {
  let message = "bdl: \(error.message)\n"
  _ = message.withCString { write(2, $0, strlen($0)) }
  exit(1)
}
