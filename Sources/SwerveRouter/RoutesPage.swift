import Foundation
import SwerveCore
import SwerveProtocol

/// `/-/routes`: the router's current view as JSON — its versions and epochs, each route with
/// its backend, and each backend's replicas and queue.
enum RoutesPage {
    static func render(_ view: RouterView, queueLength: (String) -> Int) -> [UInt8] {
        struct Page: Encodable {
            var configs: Version?
            var routing: Version?
            var routes: [Route]
            var backends: [String: Backend]
        }
        struct Version: Encodable { var epoch: Int64; var version: Int }
        struct Route: Encodable { var prefix: String; var backend: String }
        struct Backend: Encodable { var maxConcurrentQueries: Int; var replicas: [RoutedReplica]; var queued: Int }
        let page = Page(
            configs: view.configs.map { Version(epoch: $0.epoch, version: $0.view.version) },
            routing: view.routing.map { Version(epoch: $0.epoch, version: $0.view.version) },
            routes: view.table.routes.map { Route(prefix: $0.prefix, backend: $0.backend) },
            backends: view.table.backends.mapValues { Backend(maxConcurrentQueries: $0.maxConcurrentQueries, replicas: $0.replicas, queued: queueLength($0.tag)) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(page)) ?? Data("{}".utf8)) + [10]
    }
}
