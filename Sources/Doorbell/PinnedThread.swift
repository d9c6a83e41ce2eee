// A POSIX thread pinned to one CPU, for the two ends of a doorbell measurement: each end
// needs a thread of its own on a CPU of its own, which Swift concurrency cannot promise.

import CPlatform
import Glibc

/// A joinable thread, optionally pinned to a CPU before its body runs.
public final class PinnedThread {
    private var thread = pthread_t()
    private var joined = false

    private final class Start: @unchecked Sendable {
        let cpu: Int32?
        let name: String?
        let body: () -> Void
        init(cpu: Int32?, name: String?, body: @escaping () -> Void) {
            self.cpu = cpu
            self.name = name
            self.body = body
        }
    }

    /// Starts `body` on a new thread pinned to `cpu` (unpinned when nil or when the CPU is
    /// not in this process's affinity mask). `body` is moved to the new thread. A `name`
    /// (its first 15 bytes: the kernel's limit) is what `/proc/self/task/*/comm` and `top -H`
    /// show, in place before `body` runs and before this returns (both ends set it, so
    /// neither can see the starter's name); without one the thread keeps the name of the
    /// thread that started it.
    public init(cpu: Int32?, name: String? = nil, _ body: sending @escaping () -> Void) throws(DoorbellError) {
        let start = Unmanaged.passRetained(Start(cpu: cpu, name: name, body: body)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
            if let name = start.name { _ = cplatform_set_thread_name(UInt(pthread_self()), name) }
            if let cpu = start.cpu { _ = cplatform_pin_current_thread(cpu) }
            start.body()
            return nil
        }, start)
        guard rc == 0 else {
            Unmanaged<Start>.fromOpaque(start).release()
            throw .systemCall(name: "pthread_create", errno: rc)
        }
        if let name { _ = cplatform_set_thread_name(UInt(thread), name) }
    }

    /// Waits for the body to return.
    public func join() {
        guard !joined else { return }
        joined = true
        pthread_join(thread, nil)
    }

    deinit { join() }
}
