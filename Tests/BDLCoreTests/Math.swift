#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Elementary functions for the tests, named so they do not shadow anything of BDLCore's.
func logarithm(_ x: Double) -> Double { log(x) }
func cosine(_ x: Double) -> Double { cos(x) }
func exponential(_ x: Double) -> Double { exp(x) }
