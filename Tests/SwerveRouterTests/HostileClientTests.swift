import Foundation
import SwerveCore
import SwerveTestSupport
import Testing

/// The router does not trust its clients or its replicas: slow and idle clients, oversized
/// heads, too many connections, hop-by-hop headers, upgrades, hung and dying replicas. Each
/// limit is set low by its flag so that the test is quick; docs/PROTOCOL.md gives the defaults.
extension RouterProcesses {
    /// The value of metric `name` with `labels` (`reason="idle_timeout"`; nil for none) on the
    /// router's admin port; 0 when it has no such series yet.
    func counter(_ router: RunningRouter, _ name: String, _ labels: String?) async throws -> Double {
        let metrics = String(decoding: try await httpRequest(router.admin, path: "/metrics").body, as: UTF8.self)
        let series = labels.map { "\(name){\($0)} " } ?? "\(name) "
        return metrics.split(separator: "\n").first { $0.hasPrefix(series) }
            .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
    }

    @Test func slowAndIdleClientsAreCutOff() async throws {
        let front = try await router(["--client-header-timeout-ms", "300", "--client-idle-timeout-ms", "600"])
        defer { front.process.kill() }
        // Slowloris: a header line every 100 ms, never the blank line that ends the head.
        let lines = [Array("GET / HTTP/1.1\r\n".utf8)] + (0..<60).map { Array("X-Slow-\($0): 1\r\n".utf8) }
        let started = ContinuousClock.now
        let slow = try await rawExchange(front.address, chunks: lines, pause: .milliseconds(100))
        let text = String(decoding: slow.received, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 408") && text.contains("did not arrive within 300 ms"), "\(text)")
        #expect(slow.closed, "the connection is closed after the 408")
        #expect(ContinuousClock.now - started < .seconds(5), "cut off long before the client finished trickling 60 lines")

        // Connected, sent nothing: closed without a word.
        let silent = try await rawExchange(front.address, chunks: [])
        #expect(silent.closed && silent.received.isEmpty)

        // A kept-alive connection gets its answer, then is closed when idle.
        let idle = try await rawExchange(front.address, chunks: [Array("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n".utf8)])
        let answer = String(decoding: idle.received, as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 404") && idle.closed, "\(answer)")

        #expect(try await counter(front, "swerve_router_client_closed_total", "reason=\"header_timeout\"") == 2)
        #expect(try await counter(front, "swerve_router_client_closed_total", "reason=\"idle_timeout\"") == 1)
    }

    @Test func oversizedHeadsAreRefusedWith431() async throws {
        let front = try await router(["--max-head-bytes", "2048", "--max-header-fields", "10"])
        defer { front.process.kill() }
        let longLine = try await httpRequest(front.address, path: "/" + String(repeating: "x", count: 8_000))
        #expect(longLine.status == 431 && String(decoding: longLine.body, as: UTF8.self).contains("2048 bytes"))
        let fields = Dictionary(uniqueKeysWithValues: (0..<20).map { ("X-Field-\($0)", "v") })
        let many = try await httpRequest(front.address, path: "/", headers: fields)
        #expect(many.status == 431 && String(decoding: many.body, as: UTF8.self).contains("at most 10 fields"))
        let fine = try await httpRequest(front.address, path: "/", headers: ["X-One": "1"])
        #expect(fine.status == 404, "a head within the limits is served (no backend: 404)")
        #expect(try await counter(front, "swerve_router_client_closed_total", "reason=\"head_too_large\"") == 2)
    }

    @Test func connectionsOverTheCapAreAnswered503() async throws {
        let front = try await router(["--max-connections", "2", "--client-header-timeout-ms", "3000"])
        defer { front.process.kill() }
        // Two clients hold connections (a head begun, never finished); a third is refused.
        let holders = (0..<2).map { _ in
            Task { try await rawExchange(front.address, chunks: [Array("GET / HTTP/1.1\r\n".utf8)]) }
        }
        try await poll("two held connections") {
            try await counter(front, "swerve_router_client_connections", nil) == 2
        }
        let refused = try await httpRequest(front.address, path: "/")
        #expect(refused.status == 503 && String(decoding: refused.body, as: UTF8.self).contains("limit of 2 open connections"))
        #expect(refused.headers["retry-after"] == "1")
        for holder in holders { _ = try await holder.value } // cut off by the header timeout
        // Once the router counted them closed (probing with requests before that could meet the
        // cap again and be counted), a connection is accepted again.
        try await poll("the held connections closed") {
            try await counter(front, "swerve_router_client_connections", nil) == 0
        }
        #expect(try await httpRequest(front.address, path: "/").status == 404)
        #expect(try await counter(front, "swerve_router_client_closed_total", "reason=\"connection_limit\"") == 1)
    }

    @Test func hopByHopHeadersStopAtTheRouterAndUpgradesAreRefused() async throws {
        let replica = try await pythonReplica("hops", methods: """
            def do_GET(self):
                body = "".join(k.lower() + ": " + v + chr(10) for k, v in self.headers.items()).encode()
                self.send_response(200)
                self.send_header("Connection", "X-Hop")
                self.send_header("X-Hop", "1")
                self.send_header("Keep-Alive", "timeout=5")
                self.send_header("Proxy-Authenticate", "Basic")
                self.send_header("X-Kept", "yes")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            """)
        defer { replica.stop() }
        let front = try await router()
        defer { front.process.kill() }
        try await routeEverything(to: replica.address)
        try await awaitRouted(front, backend: "api", count: 1)

        let response = try await httpRequest(front.address, path: "/x", headers: [
            "Connection": "X-Secret, Content-Length", "X-Secret": "s", "TE": "trailers", "Keep-Alive": "300",
            "Proxy-Authorization": "Basic dXNlcjpwYXNz", "Upgrade": "h2c", "X-Passed": "p",
        ])
        #expect(response.status == 200)
        let seen = String(decoding: response.body, as: UTF8.self).lowercased()
        for removed in ["x-secret:", "te:", "keep-alive:", "proxy-authorization:", "upgrade:"] {
            #expect(!seen.contains(removed), "the replica received \(removed) (\(seen))")
        }
        #expect(seen.contains("x-passed: p") && seen.contains("content-length:"), "end-to-end and framing fields pass (\(seen))")
        #expect(response.headers["x-kept"] == "yes")
        for removed in ["x-hop", "keep-alive", "proxy-authenticate"] {
            #expect(response.headers[removed] == nil, "the client received \(removed)")
        }

        let websocket = try await httpRequest(front.address, path: "/ws", headers: ["Upgrade": "websocket"])
        #expect(websocket.status == 501 && String(decoding: websocket.body, as: UTF8.self).contains("Upgrade: websocket"))
        let tunnel = try await httpRequest(front.address, method: "CONNECT", path: "example.com:443")
        #expect(tunnel.status == 501, "(a response to CONNECT has no body: the reason is in the log-free 501 alone)")
    }

    @Test func aHungReplicaReleasesItsSlotWith504() async throws {
        let replica = try await pythonReplica("hung", methods: """
            def do_GET(self):
                if self.path == "/hang":
                    import time
                    time.sleep(30)
                body = b"quick"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            """)
        defer { replica.stop() }
        let front = try await router()
        defer { front.process.kill() }
        // One request at a time: the next can only go once the hung one released its slot.
        try await routeEverything(to: replica.address, config: RoutedBackendConfig(routePrefix: "/", maxConcurrentQueries: 1, upstreamTimeoutS: 0.3))
        try await awaitRouted(front, backend: "api", count: 1)
        let hung = try await httpRequest(front.address, path: "/hang")
        #expect(hung.status == 504)
        #expect(String(decoding: hung.body, as: UTF8.self).contains("sent nothing for 300 ms (the backend's upstreamTimeoutS)"))
        let next = try await httpRequest(front.address, path: "/quick")
        #expect(next.status == 200 && next.body == Array("quick".utf8), "the slot was freed")
        #expect(try await counter(front, "swerve_router_upstream_timeouts_total", "backend=\"api\"") == 1)
    }

    @Test func anIdempotentRequestWhoseReplicaDroppedItGoesToAnother() async throws {
        // `dropper` takes every request and closes the connection without a word (a replica
        // that died with it); `steady` answers.
        let dropper = try await pythonReplica("dropper", methods: """
            def answer(self):
                self.close_connection = True
            do_GET = answer
            do_PUT = answer
            do_POST = answer
            """)
        defer { dropper.stop() }
        let steady = try await pythonReplica("steady", methods: """
            def answer(self):
                body = b"steady"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            do_GET = answer
            do_POST = answer
            """)
        defer { steady.stop() }
        let front = try await router()
        defer { front.process.kill() }
        try await routeEverything(to: dropper.address, steady.address)
        try await awaitRouted(front, backend: "api", count: 2)
        for index in 0..<20 {
            let response = try await httpRequest(front.address, path: "/get/\(index)")
            #expect(response.status == 200 && response.body == Array("steady".utf8))
        }
        #expect(try await counter(front, "swerve_router_retries_total", "backend=\"api\",reason=\"connection_lost\"") >= 1,
                "the dropper took some of 20 requests")
        var posts: [Int] = []
        for index in 0..<20 { posts.append(try await httpRequest(front.address, method: "POST", path: "/post/\(index)").status) }
        #expect(posts.contains(502) && posts.allSatisfy { $0 == 200 || $0 == 502 }, "a POST is not repeated (\(posts))")

        // The backend opts out: a GET the dropper took is answered 502 too.
        try await routeEverything(to: dropper.address, steady.address, version: 2,
                                  config: RoutedBackendConfig(routePrefix: "/", maxConcurrentQueries: 10, retryIdempotentRequests: false))
        try await poll("configs view 2") { ((try await routesPage(front)["configs"] as? [String: Any])?["version"] as? Int) == 2 }
        var gets: [Int] = []
        for index in 0..<20 { gets.append(try await httpRequest(front.address, path: "/again/\(index)").status) }
        #expect(gets.contains(502) && gets.allSatisfy { $0 == 200 || $0 == 502 }, "\(gets)")
    }
}
