import CSDPlatform

/// The process's heap.
public enum Memory {
    /// Hands memory the process has freed back to the system (glibc keeps it for reuse by the thread arena that
    /// freed it, so a phase that frees a large cache on one thread and allocates on others would hold both).
    /// Does nothing where the allocator returns memory by itself.
    public static func returnFreedToSystem() { csd_release_free_memory() }
}
