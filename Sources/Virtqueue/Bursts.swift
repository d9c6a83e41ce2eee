// The burst steps every loop in the package is built from, so the gate's counted loop, the
// engine's bare rings and every parent's device thread run the same ring code: the driver
// posts a burst of buffers from its buffer ring, the device pops a burst, serves each
// chain and pushes the burst used; each side publishes once per burst.

/// Caller-owned arrays for one device loop's bursts: the chains popped and the bytes the
/// device wrote into each. Made once per loop, never per burst.
public struct DeviceBurstBuffers: @unchecked Sendable {
    public let capacity: Int
    public let chains: UnsafeMutablePointer<Chain>
    public let lengths: UnsafeMutablePointer<UInt32>

    public init(capacity: Int) {
        self.capacity = max(capacity, 1)
        chains = .allocate(capacity: self.capacity)
        lengths = .allocate(capacity: self.capacity)
        lengths.initialize(repeating: 0, count: self.capacity)
    }

    /// Frees the arrays (the owner calls it once, when its loop ends).
    public func deallocate() {
        chains.deallocate()
        lengths.deallocate()
    }
}

extension VirtqueueDriverHalf {
    /// Posts up to `count` single-descriptor chains of `length` bytes from the buffer
    /// ring `addresses`, starting at `next` and wrapping (advanced past what was posted).
    /// At most two contiguous spans, so each buffer is one indexed load. Not published.
    @inlinable @inline(__always)
    public mutating func postBurst(from addresses: UnsafeBufferPointer<UInt64>, next: inout Int, count: Int,
                                   length: UInt32, writable: Bool = false) -> Int {
        let ring = addresses.count
        guard ring > 0 else { return 0 }
        var left = count
        var total = 0
        while left > 0 {
            let base = addresses.baseAddress.unsafelyUnwrapped + next
            let posted = postBurst(count: min(left, ring &- next)) { i in
                Buffer(address: base[i], length: length, isWritable: writable)
            }
            if posted == 0 { break }
            left &-= posted
            total &+= posted
            next &+= posted
            if next == ring { next = 0 }
        }
        return total
    }
}

extension VirtqueueDeviceHalf {
    /// `serveBurst` for a half that serves nothing in place: pops up to `maximum` chains
    /// into `buffers`, has `serve` handle each and pushes them used as one burst.
    @inlinable @inline(__always)
    public mutating func serveBurst(_ buffers: DeviceBurstBuffers, maximum: Int,
                                    _ serve: (Chain, UnsafeBufferPointer<Segment>) -> UInt32) throws(VirtqueueError) -> Int {
        try popServePush(buffers, maximum: maximum, serve)
    }

    /// Pops up to `maximum` chains (at most the buffers' capacity), has `serve` handle
    /// each (it returns the bytes written into the chain's writable segments) and pushes
    /// them used. Returns how many; the caller publishes (`publishUsed()`) when it will.
    @inlinable @inline(__always)
    public mutating func popServePush(_ buffers: DeviceBurstBuffers, maximum: Int,
                                    _ serve: (Chain, UnsafeBufferPointer<Segment>) -> UInt32) throws(VirtqueueError) -> Int {
        let chains = buffers.chains
        let lengths = buffers.lengths
        let n = try popBurst(into: chains, maximum: min(maximum, buffers.capacity))
        for i in 0..<n {
            lengths[i] = serve(chains[i], segments(of: chains[i]))
        }
        pushUsedBurst(chains, count: n) { i in lengths[i] }
        return n
    }
}
