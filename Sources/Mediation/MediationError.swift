// Mediation's error type: one case per broken control-path rule (virtio 1.2 §2.1 status,
// §2.2 features, §3.1 initialisation; vDPA config ops; bus binding; lifecycles), each
// carrying what the person fixing the driver, the binding or the management script needs.

import Doorbell
import Virtqueue
import VirtioMemory

/// A broken rule of the mediated control path.
public enum MediationError: Error, Equatable, Sendable, CustomStringConvertible {
    // MARK: Config ops
    /// The parent does not implement this config op (vp_vdpa has no suspend, vdpa_sim no notify area).
    case unsupportedOp(ConfigOp, parent: String)
    /// A queue index at or beyond the number of queues the device has.
    case queueOutOfRange(queue: UInt16, queues: Int)
    /// A queue size above the parent's maximum, zero, or not a power of two for a split ring.
    case invalidQueueSize(queue: UInt16, size: Int, max: Int)
    /// A queue made ready before its size and addresses were set.
    case queueNotConfigured(queue: UInt16, missing: String)
    /// A config-space access outside the device's config space.
    case configSpaceOutOfRange(offset: Int, length: Int, size: Int)
    /// The doorbell of a passthrough notify area was already handed to a driver; a second
    /// owner would ring it from a second thread.
    case notificationAreaTaken(queue: UInt16)
    /// A queue state given to set_vq_state that does not fit the negotiated layout or queue.
    case invalidQueueState(queue: UInt16, reason: String)
    /// get/set_vq_state while the device is running: the state moves under the caller's feet.
    case queueStateWhileRunning(queue: UInt16)
    /// An address-translation update (set_map / dma_map / dma_unmap) the IOTLB refused.
    case mapping(MemoryError)
    /// IOTLB changes while the device datapath runs are not applied live (suspend first).
    case mappingChangeWhileRunning(op: ConfigOp)
    /// The parent needs an address space (platform IOMMU domain or IOTLB) before DRIVER_OK.
    case noAddressSpace(parent: String)

    // MARK: Status and feature negotiation
    /// A status bit set before the bit the spec requires first (§3.1.1).
    case statusOutOfOrder(setting: DeviceStatus, current: DeviceStatus, requires: DeviceStatus)
    /// The driver cleared a status bit without a reset (§2.1.2: only a write of 0 clears).
    case statusBitCleared(current: DeviceStatus, written: DeviceStatus)
    /// The driver wrote DEVICE_NEEDS_RESET, a bit only the device sets (§2.1.2).
    case driverSetNeedsReset
    /// Any write but reset or FAILED after the device set DEVICE_NEEDS_RESET.
    case deviceNeedsReset(written: DeviceStatus)
    /// Any write but reset after the driver set FAILED.
    case deviceFailed(written: DeviceStatus)
    /// Driver features written before DRIVER was set.
    case featuresBeforeDriver(current: DeviceStatus)
    /// Driver features written after FEATURES_OK (§2.2.2: features are fixed from then on).
    case featuresAfterFeaturesOK
    /// The driver accepted features the device did not offer (§2.2.1).
    case featureNotOffered(unoffered: UInt64)
    /// The device left FEATURES_OK clear: it cannot work with the features the driver accepted (§3.1.1 step 6).
    case featuresRefused(driverFeatures: UInt64)
    /// Queue setup before FEATURES_OK: the ring layout is not negotiated yet (§3.1.1 step 7).
    case queueSetupBeforeFeaturesOK(queue: UInt16, op: ConfigOp)
    /// Queue setup after DRIVER_OK (§3.1.1: queues are configured before the device is live).
    case queueSetupAfterDriverOK(queue: UInt16, op: ConfigOp)

    // MARK: Datapath start / stop
    /// The device half refused the ring the driver described.
    case ring(VirtqueueError)
    /// A doorbell could not be made or rung.
    case doorbell(DoorbellError)
    /// The device thread could not be started or did not stop in time.
    case deviceThread(reason: String)
    /// A device's doorbell of a transport no device loop is built for.
    case unsupportedDeviceDoorbell(transport: String, supported: [String])
    /// A parent name the registry does not know (the known ones are listed).
    case unknownParent(String, known: [String])
    /// A ring the device cannot take as laid out (a legacy device computes its areas).
    case ringLayoutRefused(queue: UInt16, parent: String, reason: String)

    // MARK: Firmware and parent faults
    /// The device's firmware did not answer a command in time; the device needs a reset.
    case firmwareTimeout(command: String, parent: String, nanoseconds: UInt64)
    /// A command was abandoned because the device was reset before the firmware served it.
    case firmwareReset(parent: String)
    /// The firmware refused a command.
    case firmwareRefused(command: String, parent: String, reason: String)
    /// The device set DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2): its queues stopped; the
    /// driver must reset it.
    case deviceSetNeedsReset(device: String, reason: String)

    // MARK: Bus and bindings
    /// No bus driver is registered for the device's class id.
    case noDriverForClass(ClassID, device: String)
    /// The device is already bound to a bus driver.
    case alreadyBound(device: String, binding: String)
    /// The device is not bound.
    case notBound(device: String)
    /// No device of this name on the bus.
    case unknownDevice(String)
    /// A vhost message sent before the one it depends on (e.g. SET_VRING_ADDR before SET_MEM_TABLE).
    case vhostMessageOutOfOrder(message: String, requires: String)
    /// A vhost address (userspace or guest) that no memory-table region covers.
    case vhostAddressUnmapped(address: UInt64, length: UInt64)
    /// The vhost consumer did not get an answer within the timeout.
    case vhostTimeout(message: String)
    /// VHOST_SET_VRING_KICK with an fd that cannot be polled: not open, not an eventfd, an
    /// eventfd without a wait queue, or one another queue already polls.
    case kickFdRejected(queue: UInt16, fd: Int32, DoorbellError)

    // MARK: Migration
    /// The source parent cannot suspend its queues, so no consistent state can be saved
    /// while the driver's buffers are in flight.
    case migrationNeedsSuspend(parent: String)
    /// The destination does not offer every feature the driver negotiated with the source.
    case migrationFeaturesMissing(destination: String, missing: UInt64)
    /// The destination's set_vq_state takes only a queue's initial state, and the saved
    /// position of `queue` is not that.
    case migrationCannotRestore(destination: String, queue: UInt16)
    /// VHOST_SET_LOG_BASE to a parent that keeps no dirty log (its device writes guest memory unseen).
    case dirtyLogUnsupported(parent: String)
    /// A dirty log that does not cover the driver's address space.
    case dirtyLogTooSmall(span: UInt64, needs: UInt64)

    // MARK: Lifecycles
    /// An mdev create/remove with a string that is not a canonical GUID.
    case malformedGUID(String)
    /// An mdev create with a GUID already in use.
    case duplicateGUID(String)
    /// No such mdev type on the parent.
    case unknownMdevType(String)
    /// Every instance of the type is in use.
    case instancesExhausted(type: String, max: Int)
    /// No mdev with this GUID.
    case unknownGUID(String)
    /// No management device of this name.
    case unknownManagementDevice(String)
    /// `vdpa dev add` with a name already taken.
    case duplicateDeviceName(String)
    /// `vdpa dev add` asked for a class the management device does not support.
    case unsupportedClass(ClassID, managementDevice: String)
    /// `vdpa dev add` asked for more queue pairs than the management device allows.
    case tooManyQueuePairs(requested: Int, max: Int)
    /// `vdpa dev add device_features` not a subset of what the management device supports.
    case deviceFeaturesNotSupported(unsupported: UInt64)
    /// Removing a device still bound to a bus driver (`vdpa dev del` of a busy device).
    case deviceBusy(device: String, binding: String)
    /// A devlink port function not in a state allowing the operation.
    case portFunctionState(port: Int, state: String, operation: String)
    /// No devlink port of this index.
    case unknownPort(Int)

    public var description: String {
        switch self {
        case let .unsupportedOp(op, parent): return "\(parent) does not implement config op \(op.rawValue)"
        case let .queueOutOfRange(q, n): return "queue \(q) does not exist: the device has \(n) queues"
        case let .invalidQueueSize(q, size, max): return "queue \(q): size \(size) is not allowed (1...\(max), power of two for split rings)"
        case let .queueNotConfigured(q, missing): return "queue \(q) made ready without its \(missing)"
        case let .configSpaceOutOfRange(o, l, s): return "config space access \(o)+\(l) outside \(s) bytes"
        case let .notificationAreaTaken(q): return "queue \(q): the notify area is already mapped by another driver"
        case let .invalidQueueState(q, reason): return "queue \(q): invalid queue state: \(reason)"
        case let .queueStateWhileRunning(q): return "queue \(q): queue state read or written while the device runs; suspend it first"
        case let .mapping(e): return "address translation: \(e)"
        case let .mappingChangeWhileRunning(op): return "\(op.rawValue) while the datapath runs; suspend the device first"
        case let .noAddressSpace(parent): return "\(parent): DRIVER_OK without an address space (no platform IOMMU domain and no IOTLB)"
        case let .statusOutOfOrder(setting, current, requires):
            return "status \(setting) set while status is \(current): \(requires) must be set first (virtio 1.2 §3.1.1)"
        case let .statusBitCleared(current, written): return "status write \(written) clears bits of \(current) without a reset (virtio 1.2 §2.1.2)"
        case .driverSetNeedsReset: return "the driver wrote DEVICE_NEEDS_RESET, which only the device sets (virtio 1.2 §2.1.2)"
        case let .deviceNeedsReset(w): return "status write \(w) after DEVICE_NEEDS_RESET: only a reset is allowed"
        case let .deviceFailed(w): return "status write \(w) after FAILED: only a reset is allowed"
        case let .featuresBeforeDriver(current): return "driver features written with status \(current): DRIVER must be set first"
        case .featuresAfterFeaturesOK: return "driver features written after FEATURES_OK (virtio 1.2 §2.2.2)"
        case let .featureNotOffered(bits): return "driver accepted feature bits 0x\(String(bits, radix: 16)) the device does not offer"
        case let .featuresRefused(f): return "the device refused FEATURES_OK for driver features 0x\(String(f, radix: 16))"
        case let .queueSetupBeforeFeaturesOK(q, op): return "queue \(q): \(op.rawValue) before FEATURES_OK"
        case let .queueSetupAfterDriverOK(q, op): return "queue \(q): \(op.rawValue) after DRIVER_OK"
        case let .ring(e): return "ring: \(e)"
        case let .doorbell(e): return "doorbell: \(e)"
        case let .deviceThread(reason): return "device thread: \(reason)"
        case let .unsupportedDeviceDoorbell(transport, supported):
            return "a device doorbell must be one of \(supported.joined(separator: ", ")), not \(transport)"
        case let .firmwareTimeout(command, parent, ns):
            return "\(parent): firmware did not answer \(command) within \(ns / 1_000_000) ms; the device needs a reset"
        case let .firmwareReset(parent):
            return "\(parent): command abandoned: the device was reset before the firmware served it"
        case let .firmwareRefused(command, parent, reason):
            return "\(parent): firmware refused \(command): \(reason)"
        case let .deviceSetNeedsReset(device, reason):
            return "device \(device) set DEVICE_NEEDS_RESET (\(reason)); reset it to recover"
        case let .ringLayoutRefused(queue, parent, reason):
            return "\(parent) refuses queue \(queue)'s ring: \(reason)"
        case let .unknownParent(name, known):
            return "no parent named '\(name)' (known: \(known.joined(separator: ", ")))"
        case let .noDriverForClass(c, d): return "no bus driver matches class \(c) of device \(d)"
        case let .alreadyBound(d, b): return "device \(d) is already bound to \(b)"
        case let .notBound(d): return "device \(d) is not bound"
        case let .unknownDevice(d): return "no vDPA device named \(d)"
        case let .vhostMessageOutOfOrder(m, r): return "vhost \(m) before \(r)"
        case let .vhostAddressUnmapped(a, l): return "vhost address 0x\(String(a, radix: 16))+\(l) is in no memory-table region"
        case let .vhostTimeout(m): return "vhost \(m): no answer from the binding in time"
        case let .kickFdRejected(q, fd, e): return "vhost VHOST_SET_VRING_KICK queue \(q): kick fd \(fd) cannot be polled: \(e)"
        case let .migrationNeedsSuspend(parent):
            return "\(parent) cannot suspend its queues, so their state cannot be saved while buffers are in flight: migrate it behind its shadow virtqueue (\(parent)+svq), as QEMU does"
        case let .dirtyLogUnsupported(parent):
            return "\(parent) keeps no dirty log: the pages its device writes cannot be tracked; put it behind its shadow virtqueue (\(parent)+svq) to log them"
        case let .dirtyLogTooSmall(span, needs):
            return "the dirty log covers 0x\(String(span, radix: 16)) bytes of addresses, the driver's memory reaches 0x\(String(needs, radix: 16))"
        case let .migrationCannotRestore(destination, queue):
            return "\(destination) accepts only a queue's initial state and queue \(queue) has run: bring it up behind its shadow virtqueue (\(destination)+svq), whose relay restores the driver's position"
        case let .migrationFeaturesMissing(destination, missing):
            return "\(destination) does not offer features 0x\(String(missing, radix: 16)) the driver negotiated with the source: it cannot take the device over"
        case let .malformedGUID(g): return "'\(g)' is not a GUID (8-4-4-4-12 hex digits)"
        case let .duplicateGUID(g): return "an mdev with GUID \(g) already exists"
        case let .unknownMdevType(t): return "no mdev type \(t)"
        case let .instancesExhausted(t, max): return "mdev type \(t): all \(max) instances are in use"
        case let .unknownGUID(g): return "no mdev with GUID \(g)"
        case let .unknownManagementDevice(m): return "no management device \(m)"
        case let .duplicateDeviceName(n): return "a vDPA device named \(n) already exists"
        case let .unsupportedClass(c, m): return "management device \(m) cannot create class \(c) devices"
        case let .tooManyQueuePairs(r, max): return "max_vqp \(r) exceeds the management device's \(max)"
        case let .deviceFeaturesNotSupported(bits): return "device_features 0x\(String(bits, radix: 16)) not supported by the management device"
        case let .deviceBusy(d, b): return "device \(d) is bound to \(b): unbind it before deleting"
        case let .portFunctionState(p, s, op): return "port \(p) function is \(s): cannot \(op)"
        case let .unknownPort(p): return "no devlink port \(p)"
        }
    }
}
