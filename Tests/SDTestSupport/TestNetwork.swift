import Foundation

/// Where the tests' network traffic can go. `scripts/test` runs the suite in a network namespace of its own
/// (`unshare -n`) that has only `lo`, up and with multicast: nothing a test sends (LAN announcements
/// included) reaches the machine's real interfaces. Tests that multicast require it.
public enum TestNetwork {
    /// The network interfaces this process sees (`/proc/self/net/dev` is of the process's own namespace).
    public static var interfaces: [String] {
        guard let text = try? String(contentsOfFile: "/proc/self/net/dev", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").dropFirst(2).compactMap { line in
            line.split(separator: ":").first.map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }

    /// The namespace's stand-in for this machine's LAN address (on `lo`, added by scripts/test).
    public static let lanAddress = "10.254.73.1"

    /// Whether the only interface is loopback: traffic cannot leave this machine.
    public static var isIsolated: Bool { interfaces == ["lo"] }

    /// Why a test that multicasts must not run here, or nil when it may.
    public static var notIsolatedReason: String? {
        isIsolated
            ? nil
            : "this test multicasts and must run in a network namespace of its own (scripts/test makes one); "
                + "interfaces here: \(interfaces.joined(separator: ", "))"
    }
}
