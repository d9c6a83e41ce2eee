// The `vdpa` tool's argument style (iproute2 vdpa(8)): a command's words are keyword-value
// pairs in any order (`dev add name vdpa0 mgmtdev vdpa_sim_mgmt mac 02:00:00:00:00:07 mtu 9000
// max_vqp 2`), or one device name (`dev del vdpa0`). Pure parsing: the values are checked here,
// what depends on the management device (max_vqp's upper bound) when the device is added.
// Keywords match exactly (iproute2 also accepts some prefixes).

/// What `dev add` asks for.
public struct VDPADevAddRequest: Sendable, Equatable {
    public var name: String
    public var mgmtdev: String
    public var mac: [UInt8]?
    public var mtu: Int?
    public var maxVQP: Int?
    public var deviceFeatures: UInt64?

    public init(name: String, mgmtdev: String, mac: [UInt8]? = nil, mtu: Int? = nil, maxVQP: Int? = nil,
                deviceFeatures: UInt64? = nil) {
        self.name = name
        self.mgmtdev = mgmtdev
        self.mac = mac
        self.mtu = mtu
        self.maxVQP = maxVQP
        self.deviceFeatures = deviceFeatures
    }
}

public enum VDPAArguments {
    /// `dev add`'s keywords, in vdpa(8)'s synopsis order.
    public static let devAddKeywords = ["name", "mgmtdev", "mac", "mtu", "max_vqp", "device_features"]

    /// The MTU range: Ethernet's minimum (ETH_MIN_MTU) to the 16-bit config field's maximum
    /// (virtio 1.2 §5.1.4, `le16 mtu`).
    public static let mtuRange = 68...65535

    /// `dev add name NAME mgmtdev MGMTDEV [mac MAC] [mtu MTU] [max_vqp N] [device_features HEX]`.
    public static func devAdd(_ words: [String]) throws(VDPAToolError) -> VDPADevAddRequest {
        let command = "dev add"
        var values: [String: String] = [:]
        var i = 0
        while i < words.count {
            let keyword = words[i]
            guard devAddKeywords.contains(keyword) else {
                throw .unknownKeyword(keyword, command: command, expected: devAddKeywords)
            }
            guard i + 1 < words.count else { throw .missingValue(keyword: keyword) }
            guard values[keyword] == nil else { throw .repeatedKeyword(keyword) }
            values[keyword] = words[i + 1]
            i += 2
        }
        guard let name = values["name"] else { throw .missingKeyword("name", command: command) }
        guard let mgmtdev = values["mgmtdev"] else { throw .missingKeyword("mgmtdev", command: command) }
        var request = VDPADevAddRequest(name: try deviceName(name), mgmtdev: mgmtdev)
        if let v = values["mac"] { request.mac = try mac(v) }
        if let v = values["mtu"] { request.mtu = try mtu(v) }
        if let v = values["max_vqp"] { request.maxVQP = try maxVQP(v) }
        if let v = values["device_features"] { request.deviceFeatures = try deviceFeatures(v) }
        return request
    }

    /// `[NAME]`: no words, or one.
    public static func optionalName(_ words: [String], command: String) throws(VDPAToolError) -> String? {
        if words.count > 1 { throw .unexpectedArgument(words[1], command: command) }
        return words.first
    }

    /// `NAME`: exactly one word.
    public static func requiredName(_ words: [String], command: String) throws(VDPAToolError) -> String {
        guard let name = try optionalName(words, command: command) else { throw .missingDeviceName(command: command) }
        return name
    }

    /// A device name becomes a directory name under /sys/bus/vdpa/devices.
    public static func deviceName(_ text: String) throws(VDPAToolError) -> String {
        guard !text.isEmpty, !text.contains("/"), !text.contains(where: \.isWhitespace) else {
            throw .badValue(keyword: "name", value: text, rule: "a device name is non-empty, without '/' or white space")
        }
        return text
    }

    /// Six colon-separated hex octets, unicast and not all zero: the device's own address
    /// (Linux's is_valid_ether_addr; a multicast bit would make it a group address).
    public static func mac(_ text: String) throws(VDPAToolError) -> [UInt8] {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        var octets: [UInt8] = []
        for part in parts {
            guard (1...2).contains(part.count), part.allSatisfy(\.isHexDigit), let octet = UInt8(part, radix: 16) else { break }
            octets.append(octet)
        }
        guard parts.count == 6, octets.count == 6 else {
            throw .badValue(keyword: "mac", value: text, rule: "expected six hex octets separated by ':', e.g. 02:00:00:00:00:07")
        }
        guard octets[0] & 1 == 0 else {
            throw .badValue(keyword: "mac", value: text, rule: "a multicast address (low bit of the first octet set) cannot be a device's address")
        }
        guard octets.contains(where: { $0 != 0 }) else {
            throw .badValue(keyword: "mac", value: text, rule: "the all-zero address cannot be a device's address")
        }
        return octets
    }

    public static func mtu(_ text: String) throws(VDPAToolError) -> Int {
        guard let value = Int(text), mtuRange.contains(value) else {
            throw .badValue(keyword: "mtu", value: text,
                            rule: "expected a whole number of bytes in \(mtuRange.lowerBound)...\(mtuRange.upperBound)")
        }
        return value
    }

    /// At least one pair; the management device's maximum is checked when the device is added.
    public static func maxVQP(_ text: String) throws(VDPAToolError) -> Int {
        guard let value = Int(text), value >= 1 else {
            throw .badValue(keyword: "max_vqp", value: text, rule: "expected a whole number of queue pairs, at least 1")
        }
        return value
    }

    /// A 64-bit feature mask in hex, `0x` optional (vdpa(8) reads it in base 16).
    public static func deviceFeatures(_ text: String) throws(VDPAToolError) -> UInt64 {
        let digits = text.hasPrefix("0x") || text.hasPrefix("0X") ? String(text.dropFirst(2)) : text
        guard !digits.isEmpty, digits.allSatisfy(\.isHexDigit), let value = UInt64(digits, radix: 16) else {
            throw .badValue(keyword: "device_features", value: text, rule: "expected a 64-bit hex mask, e.g. 0x300000020")
        }
        return value
    }

    /// `02:00:00:00:00:07`, as vdpa(8) prints addresses.
    public static func format(mac: [UInt8]) -> String {
        mac.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }
}
