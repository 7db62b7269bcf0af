import CSDPlatform

/// Scheduling priority of the calling thread.
public enum Priority {
    /// Background work (jobs in the daemon) runs at this niceness, so that answering clients comes first.
    public static let background: Int32 = 10

    /// Lowers the calling thread's priority (threads it starts afterwards inherit it, on Linux). Best effort:
    /// false when the system refused.
    @discardableResult
    public static func lowerThisThread(to niceness: Int32 = background) -> Bool {
        csd_nice_this_thread(niceness) == 0
    }
}
