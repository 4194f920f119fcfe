/// The page and its assets, embedded in the binary at build time (`Resources/`, SwiftPM's
/// `embedInCode`): no CDN, no files to install, nothing fetched from the network.
enum DashboardAssets {
    struct File: Sendable {
        let contentType: String
        let bytes: [UInt8]
    }

    static func file(at path: String) -> File? {
        switch path {
        case "/", "/index.html": File(contentType: "text/html; charset=utf-8", bytes: PackageResources.index_html)
        case "/app.js": File(contentType: "text/javascript; charset=utf-8", bytes: PackageResources.app_js)
        case "/app.css": File(contentType: "text/css; charset=utf-8", bytes: PackageResources.app_css)
        case "/favicon.svg": File(contentType: "image/svg+xml", bytes: PackageResources.favicon_svg)
        default: nil
        }
    }
}
