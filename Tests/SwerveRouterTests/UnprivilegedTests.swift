import Foundation
import Glibc
import SwerveCore
import SwerveProtocol
import SwerveTestSupport
import Testing

/// The way the image runs Swerve: as a non-root user. A socket option that only root may set
/// once reset every proxied connection there, while every test (run as root) passed.
extension RouterProcesses {
    @Test func unprivilegedProcessesServeRequestsWithNoDelayOnEverySocket() async throws {
        try #require(getuid() != 0 || testUser != nil, "as root, run through ops/test: it sets SWERVE_TEST_USER so swerve runs unprivileged")
        let leader = try controller("c1")
        let agent = try node()
        let front = try await router()
        defer { leader.kill(); agent.kill(SIGTERM); front.process.kill() }
        #expect(try await request(backend("echo", replicas: 1, route: "/echo"), goal: "g-1") == GoalOutcome(goal: "g-1"))
        try await awaitRouted(front, backend: "echo", count: 1)
        let (tag, address) = try #require(try await routedReplicas("echo").first)
        let worker = try #require(try await pid(tag))

        // Controller, node agent, its worker and the router all run without root.
        for (name, pid) in [("controller", leader.process.processIdentifier), ("node agent", agent.process.processIdentifier),
                            ("worker", worker), ("router", front.process.process.processIdentifier)] {
            let uid = try #require(try realUID(of: pid), "\(name) (pid \(pid)) is running")
            #expect(uid != 0, "the \(name) runs as uid \(uid)")
        }

        // Real requests through: a proxied one, and the router's own 404.
        for _ in 0..<20 {
            #expect(try await httpRequest(front.address, path: "/echo/x").status == 200)
        }
        #expect(try await httpRequest(front.address, path: "/nowhere").status == 404)

        // While a kept-alive client connection is open (and the replica connection that served
        // it waits in the pool), read the options of the sockets inside the router and worker.
        let options = try await socketOptions(router: front.address, routerPID: front.process.process.processIdentifier,
                                              workerPID: worker, replicaPort: Int(address.split(separator: ":").last ?? "") ?? 0)
        #expect(options["status"] as? Int == 200)
        for socket in ["client", "upstream", "worker"] {
            let found = try #require(options[socket] as? [String: Int], "the \(socket) socket was found: \(options)")
            #expect(found["nodelay"] == 1, "TCP_NODELAY on the router's \(socket) socket: \(found)")
            #expect(found["debug"] == 0, "SO_DEBUG off on the \(socket) socket: \(found)")
        }
        let metrics = String(decoding: try await httpRequest(front.admin, path: "/metrics").body, as: UTF8.self)
        #expect(!metrics.contains("swerve_connection_setup_failures_total{"), "no connection setup failed: \(metrics)")
    }

    /// The real user id in `/proc/PID/status`, or nil when the process is gone.
    func realUID(of pid: Int32) throws -> UInt32? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        let line = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }
        return line.flatMap { $0.split(whereSeparator: \.isWhitespace).dropFirst().first }.flatMap { UInt32($0) }
    }

    /// Opens a kept-alive connection to the router, sends one request through it and, with the
    /// connection still open, takes a copy of three sockets (`pidfd_getfd`: root, or the same
    /// user) to read `TCP_NODELAY` and `SO_DEBUG`: the router's end of that connection
    /// (`client`), the router's pooled connection to the replica (`upstream`), and the
    /// worker's end of it (`worker`).
    func socketOptions(router: String, routerPID: Int32, workerPID: Int32, replicaPort: Int) async throws -> [String: Any] {
        let script = "\(testDirectory)/\(keys.cluster)-sockets.py"
        try """
            import ctypes, json, os, socket, sys
            router, router_pid, worker_pid, replica_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
            libc = ctypes.CDLL(None, use_errno=True)
            SYS_pidfd_getfd = 438

            def options(pid, local, remote):
                # The socket of `pid` whose ports are local and remote (0: any).
                inodes = set()
                for table in ("tcp", "tcp6"):
                    for line in open(f"/proc/{pid}/net/{table}").readlines()[1:]:
                        fields = line.split()
                        l, r = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
                        if (local == 0 or l == local) and (remote == 0 or r == remote) and fields[3] == "01":
                            inodes.add(fields[9])
                pidfd = os.pidfd_open(pid)
                try:
                    for fd in os.listdir(f"/proc/{pid}/fd"):
                        try:
                            link = os.readlink(f"/proc/{pid}/fd/{fd}")
                        except OSError:
                            continue
                        if link.startswith("socket:[") and link[8:-1] in inodes:
                            copy = libc.syscall(SYS_pidfd_getfd, pidfd, int(fd), 0)
                            if copy < 0:
                                raise OSError(ctypes.get_errno(), "pidfd_getfd")
                            s = socket.socket(fileno=copy)
                            try:
                                return {"nodelay": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                                        "debug": s.getsockopt(socket.SOL_SOCKET, socket.SO_DEBUG)}
                            finally:
                                s.close()
                finally:
                    os.close(pidfd)
                return None

            host, port = router.rsplit(":", 1)
            client = socket.create_connection((host, int(port)))
            client.sendall(b"GET /echo/kept HTTP/1.1\\r\\nHost: test\\r\\n\\r\\n")
            data = b""
            while b"\\r\\n\\r\\n" not in data:
                data += client.recv(65536)
            head, body = data.split(b"\\r\\n\\r\\n", 1)
            length = next((int(l.split(b":")[1]) for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += client.recv(65536)
            client_port = client.getsockname()[1]
            print(json.dumps({
                "status": int(head.split(b" ")[1]),
                "client": options(router_pid, int(port), client_port),
                "upstream": options(router_pid, 0, replica_port),
                "worker": options(worker_pid, replica_port, 0),
            }))
            client.close()

            """.write(toFile: script, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, router, "\(routerPID)", "\(workerPID)", "\(replicaPort)"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = await Task.detached { output.fileHandleForReading.readDataToEndOfFile() }.value
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("the socket inspection script failed (\(process.terminationStatus))") }
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }
}
