import Foundation

/// Milliseconds since 1970 from the system's wall clock.
func systemMilliseconds() -> UInt64 {
    UInt64(max(0, Date().timeIntervalSince1970 * 1000))
}
