// Where the devices `vqbench dev add` creates live between invocations, as the kernel's
// live until `vdpa dev del`: a small JSON document of what each `dev add` asked for, replayed
// into a fresh VDPATool by every invocation. Changes hold an exclusive lock on a sibling
// `.lock` file and replace the document by rename, so concurrent invocations never lose a device.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One created device, as `dev add` asked for it (absent values take the management device's defaults).
public struct VDPADeviceRecord: Codable, Sendable, Equatable {
    public var name: String
    public var mgmtdev: String
    public var mac: String?
    public var mtu: Int?
    public var maxVQP: Int?
    /// Hex, as `device_features` is written (a JSON number cannot hold every 64-bit mask exactly).
    public var deviceFeatures: String?

    enum CodingKeys: String, CodingKey {
        case name, mgmtdev, mac, mtu
        case maxVQP = "max_vqp"
        case deviceFeatures = "device_features"
    }

    public init(_ request: VDPADevAddRequest) {
        name = request.name
        mgmtdev = request.mgmtdev
        mac = request.mac.map { VDPAArguments.format(mac: $0) }
        mtu = request.mtu
        maxVQP = request.maxVQP
        deviceFeatures = request.deviceFeatures.map { "0x" + String($0, radix: 16) }
    }

    /// The request this record replays, its values checked again (the file may have been edited).
    public func request() throws(VDPAToolError) -> VDPADevAddRequest {
        var r = VDPADevAddRequest(name: try VDPAArguments.deviceName(name), mgmtdev: mgmtdev)
        if let mac { r.mac = try VDPAArguments.mac(mac) }
        if let mtu { r.mtu = try VDPAArguments.mtu(String(mtu)) }
        if let maxVQP { r.maxVQP = try VDPAArguments.maxVQP(String(maxVQP)) }
        if let deviceFeatures { r.deviceFeatures = try VDPAArguments.deviceFeatures(deviceFeatures) }
        return r
    }
}

/// The state document: its version and the devices in creation order.
public struct VDPAStateDocument: Codable, Sendable, Equatable {
    public static let currentVersion = 1
    public var version: Int
    public var devices: [VDPADeviceRecord]
    public init(devices: [VDPADeviceRecord] = []) {
        version = Self.currentVersion
        self.devices = devices
    }
}

public struct VDPAStateFile: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// `${XDG_RUNTIME_DIR:-/tmp}/vqbench-vdpa.json` (an empty XDG_RUNTIME_DIR counts as unset, as in the shell).
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let dir = environment["XDG_RUNTIME_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        return dir + "/vqbench-vdpa.json"
    }

    /// The document, or an empty one when the file does not exist yet.
    public func load() throws(VDPAToolError) -> VDPAStateDocument {
        guard FileManager.default.fileExists(atPath: path) else { return VDPAStateDocument() }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .stateFile(path: path, problem: "cannot be read: \(error.localizedDescription)")
        }
        let document: VDPAStateDocument
        do { document = try JSONDecoder().decode(VDPAStateDocument.self, from: data) } catch {
            throw .stateFile(path: path, problem: "is not a vqbench vDPA state document (\(Self.describe(error))); delete it to start over")
        }
        guard document.version == VDPAStateDocument.currentVersion else {
            throw .stateFile(path: path, problem: "has version \(document.version); this vqbench reads version \(VDPAStateDocument.currentVersion)")
        }
        return document
    }

    /// Replaces the document: written to a temporary file beside it, then renamed over it.
    public func save(_ document: VDPAStateDocument) throws(VDPAToolError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let temporary = path + ".tmp.\(getpid())"
        do {
            try encoder.encode(document).write(to: URL(fileURLWithPath: temporary))
        } catch {
            throw .stateFile(path: path, problem: "cannot be written: \(error.localizedDescription)")
        }
        guard rename(temporary, path) == 0 else {
            let problem = "cannot be replaced: rename failed: \(String(cString: strerror(errno)))"
            unlink(temporary)
            throw .stateFile(path: path, problem: problem)
        }
    }

    /// Runs `body` holding an exclusive lock on `<path>.lock`: one invocation changes the state at a time.
    public func withLock<T>(_ body: () throws(VDPAToolError) -> T) throws(VDPAToolError) -> T {
        let lockPath = path + ".lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw .stateFile(path: path, problem: "cannot open its lock file \(lockPath): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                throw .stateFile(path: path, problem: "cannot lock \(lockPath): \(String(cString: strerror(errno)))")
            }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    private static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case let .dataCorrupted(context)?: return context.debugDescription
        case let .keyNotFound(key, _)?: return "no \"\(key.stringValue)\""
        case let .typeMismatch(_, context)?, let .valueNotFound(_, context)?:
            return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        default: return "\(error)"
        }
    }
}
