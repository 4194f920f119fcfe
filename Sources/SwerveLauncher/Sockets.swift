import Glibc
import SwerveCore

/// A TCP port on 127.0.0.1 that nothing listens on now: `preferred` when it is free, else one
/// the kernel picks.
public func freeLoopbackPort(preferred: Int? = nil) throws -> Int {
    if let preferred, let port = bindLoopback(port: preferred) { return port }
    guard let port = bindLoopback(port: 0) else { throw LauncherError("no free TCP port on 127.0.0.1") }
    return port
}

/// Binds a TCP socket to 127.0.0.1:`port` (0: any) and closes it; returns the port it got, or
/// nil when that port is taken.
public func bindLoopback(port: Int) -> Int? {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { return nil }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Why a blocking socket could not be connected.
public struct SocketError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Connects a blocking TCP socket to the IPv4 `address` (`host:port`); with
/// `receiveTimeoutSeconds`, a receive that waits longer fails (`EAGAIN`). The caller closes it.
public func connectTCP(_ address: String, receiveTimeoutSeconds: Int? = nil) -> Result<Int32, SocketError> {
    guard let parsed = HostPort(address) else {
        return .failure(SocketError(description: "bad address: \(HostPort.problem(in: address) ?? address)"))
    }
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    if let receiveTimeoutSeconds {
        var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }
    var socketAddress = sockaddr_in()
    socketAddress.sin_family = sa_family_t(AF_INET)
    socketAddress.sin_port = parsed.port.bigEndian
    socketAddress.sin_addr.s_addr = inet_addr(parsed.host)
    let connected = withUnsafePointer(to: &socketAddress) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        let failure = SocketError(description: "connect to \(address): \(String(cString: strerror(errno)))")
        close(descriptor)
        return .failure(failure)
    }
    return .success(descriptor)
}
