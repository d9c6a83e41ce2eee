// The vhost-user wire protocol (QEMU's docs/interop/vhost-user.rst): a 12-byte header —
// request, flags (version 1 in bits 0–1, REPLY bit 2, NEED_REPLY bit 3), payload size —
// then the payload, with file descriptors riding on the message as SCM_RIGHTS. Numbers,
// layouts and sizes here are the specification's; every value is little-endian (the
// front end's native order on every platform vhost-user runs on).

/// A front end's request (or a back end's reply to it), by the specification's number.
public enum VhostUserRequest: UInt32, Sendable, CaseIterable {
    case getFeatures = 1
    case setFeatures = 2
    case setOwner = 3
    case resetOwner = 4
    case setMemTable = 5
    case setLogBase = 6
    case setLogFD = 7
    case setVringNum = 8
    case setVringAddr = 9
    case setVringBase = 10
    case getVringBase = 11
    case setVringKick = 12
    case setVringCall = 13
    case setVringErr = 14
    case getProtocolFeatures = 15
    case setProtocolFeatures = 16
    case getQueueNum = 17
    case setVringEnable = 18
    case sendRARP = 19
    case netSetMTU = 20
    case setBackendReqFD = 21
    case iotlbMessage = 22
    case setVringEndian = 23
    case getConfig = 24
    case setConfig = 25
    case resetDevice = 34
    case getMaxMemSlots = 36
    case addMemReg = 37
    case remMemReg = 38
    case setStatus = 39
    case getStatus = 40

    /// The name as the specification spells it.
    public var name: String {
        switch self {
        case .getFeatures: "VHOST_USER_GET_FEATURES"
        case .setFeatures: "VHOST_USER_SET_FEATURES"
        case .setOwner: "VHOST_USER_SET_OWNER"
        case .resetOwner: "VHOST_USER_RESET_OWNER"
        case .setMemTable: "VHOST_USER_SET_MEM_TABLE"
        case .setLogBase: "VHOST_USER_SET_LOG_BASE"
        case .setLogFD: "VHOST_USER_SET_LOG_FD"
        case .setVringNum: "VHOST_USER_SET_VRING_NUM"
        case .setVringAddr: "VHOST_USER_SET_VRING_ADDR"
        case .setVringBase: "VHOST_USER_SET_VRING_BASE"
        case .getVringBase: "VHOST_USER_GET_VRING_BASE"
        case .setVringKick: "VHOST_USER_SET_VRING_KICK"
        case .setVringCall: "VHOST_USER_SET_VRING_CALL"
        case .setVringErr: "VHOST_USER_SET_VRING_ERR"
        case .getProtocolFeatures: "VHOST_USER_GET_PROTOCOL_FEATURES"
        case .setProtocolFeatures: "VHOST_USER_SET_PROTOCOL_FEATURES"
        case .getQueueNum: "VHOST_USER_GET_QUEUE_NUM"
        case .setVringEnable: "VHOST_USER_SET_VRING_ENABLE"
        case .sendRARP: "VHOST_USER_SEND_RARP"
        case .netSetMTU: "VHOST_USER_NET_SET_MTU"
        case .setBackendReqFD: "VHOST_USER_SET_BACKEND_REQ_FD"
        case .iotlbMessage: "VHOST_USER_IOTLB_MSG"
        case .setVringEndian: "VHOST_USER_SET_VRING_ENDIAN"
        case .getConfig: "VHOST_USER_GET_CONFIG"
        case .setConfig: "VHOST_USER_SET_CONFIG"
        case .resetDevice: "VHOST_USER_RESET_DEVICE"
        case .getMaxMemSlots: "VHOST_USER_GET_MAX_MEM_SLOTS"
        case .addMemReg: "VHOST_USER_ADD_MEM_REG"
        case .remMemReg: "VHOST_USER_REM_MEM_REG"
        case .setStatus: "VHOST_USER_SET_STATUS"
        case .getStatus: "VHOST_USER_GET_STATUS"
        }
    }
}

/// The header's flags word.
public enum VhostUserFlags {
    /// Bits 0–1: the protocol version, 1.
    public static let versionMask: UInt32 = 0x3
    public static let version: UInt32 = 0x1
    /// Bit 2: this message is a reply.
    public static let reply: UInt32 = 1 << 2
    /// Bit 3: the sender wants a reply (REPLY_ACK) to a request that has none of its own.
    public static let needReply: UInt32 = 1 << 3
}

/// Feature and protocol-feature bits of the specification.
public enum VhostUserFeatures {
    /// Virtio feature bit 30: the back end speaks GET/SET_PROTOCOL_FEATURES.
    public static let protocolFeatures: UInt64 = 1 << 30
    /// VHOST_F_LOG_ALL (bit 26): dirty logging for migration.
    public static let logAll: UInt64 = 1 << 26
}

/// Protocol-feature bits (VHOST_USER_PROTOCOL_F_*).
public enum VhostUserProtocolFeatures {
    public static let multiQueue: UInt64 = 1 << 0
    public static let logSharedMemory: UInt64 = 1 << 1
    public static let rarp: UInt64 = 1 << 2
    public static let replyAck: UInt64 = 1 << 3
    public static let mtu: UInt64 = 1 << 4
    public static let backendRequests: UInt64 = 1 << 5
    public static let config: UInt64 = 1 << 9
    public static let resetDevice: UInt64 = 1 << 13
    public static let inbandNotifications: UInt64 = 1 << 14
    public static let configureMemSlots: UInt64 = 1 << 15
    public static let status: UInt64 = 1 << 16
}

/// Sizes and limits.
public enum VhostUserLimits {
    public static let headerSize = 12
    /// The largest payload accepted (the specification's messages are at most a few
    /// hundred bytes; rust-vmm's back ends accept up to 4 KiB).
    public static let maxPayload = 4096
    /// Regions a SET_MEM_TABLE may carry (VHOST_MEMORY_BASELINE_NREGIONS).
    public static let maxRegions = 8
    /// File descriptors one message may carry (rust-vmm's MAX_ATTACHED_FD_ENTRIES).
    public static let maxFileDescriptors = 32
    /// Bits 0–7 of a vring file payload name the queue.
    public static let vringIndexMask: UInt64 = 0xFF
    /// Bit 8 of a vring file payload: no descriptor is attached (the queue is polled).
    public static let vringNoFileDescriptor: UInt64 = 1 << 8
    /// Config space a GET/SET_CONFIG may address (VHOST_USER_MAX_CONFIG_SIZE).
    public static let maxConfig = 256
    /// Queues one device may have (a vring index is 8 bits in the vring file payloads).
    public static let maxQueues = 256
}

/// One region of a memory table: guest-physical range, the front end's virtual address
/// of it, and where it starts in the attached file.
public struct VhostUserMemoryRegion: Sendable, Equatable {
    public var guestPhysicalAddress: UInt64
    public var size: UInt64
    public var userAddress: UInt64
    public var mmapOffset: UInt64
    public init(guestPhysicalAddress: UInt64, size: UInt64, userAddress: UInt64, mmapOffset: UInt64) {
        self.guestPhysicalAddress = guestPhysicalAddress
        self.size = size
        self.userAddress = userAddress
        self.mmapOffset = mmapOffset
    }
    /// Bytes on the wire.
    public static let wireSize = 32
}

/// The addresses of one vring (struct vhost_vring_addr): the front end's virtual
/// addresses of its three areas, and the guest address of its used ring for logging.
public struct VhostUserVringAddress: Sendable, Equatable {
    public var index: UInt32
    public var flags: UInt32
    public var descriptorUserAddress: UInt64
    public var usedUserAddress: UInt64
    public var availableUserAddress: UInt64
    public var logGuestAddress: UInt64
    public init(index: UInt32, flags: UInt32 = 0, descriptorUserAddress: UInt64, usedUserAddress: UInt64,
                availableUserAddress: UInt64, logGuestAddress: UInt64 = 0) {
        self.index = index
        self.flags = flags
        self.descriptorUserAddress = descriptorUserAddress
        self.usedUserAddress = usedUserAddress
        self.availableUserAddress = availableUserAddress
        self.logGuestAddress = logGuestAddress
    }
    /// Bit 0 of flags: log the used ring's writes (VHOST_VRING_F_LOG).
    public static let logFlag: UInt32 = 1
    public static let wireSize = 40
}

/// A vring base for a packed queue (SET/GET_VRING_BASE's 32-bit number): the next
/// available position and its wrap counter in bits 0–15, the next used position and its
/// wrap counter in bits 16–31. A split queue's base is the next available index alone.
public struct VhostUserPackedBase: Sendable, Equatable {
    public var availableIndex: UInt16
    public var availableWrap: Bool
    public var usedIndex: UInt16
    public var usedWrap: Bool
    public init(availableIndex: UInt16, availableWrap: Bool, usedIndex: UInt16, usedWrap: Bool) {
        self.availableIndex = availableIndex
        self.availableWrap = availableWrap
        self.usedIndex = usedIndex
        self.usedWrap = usedWrap
    }
    public init(_ num: UInt32) {
        availableIndex = UInt16(truncatingIfNeeded: num) & 0x7FFF
        availableWrap = num & 0x8000 != 0
        usedIndex = UInt16(truncatingIfNeeded: num >> 16) & 0x7FFF
        usedWrap = num & 0x8000_0000 != 0
    }
    public var num: UInt32 {
        UInt32(availableIndex & 0x7FFF) | (availableWrap ? 0x8000 : 0)
            | UInt32(usedIndex & 0x7FFF) << 16 | (usedWrap ? 0x8000_0000 : 0)
    }
}
