/// The library version; equals BDL_VERSION_MAJOR/MINOR/PATCH in include/bdlcore.h (a test checks).
public enum Version {
  public static let major = 0
  public static let minor = 1
  public static let patch = 0
  /// "MAJOR.MINOR.PATCH".
  public static var string: String { "\(major).\(minor).\(patch)" }
}
