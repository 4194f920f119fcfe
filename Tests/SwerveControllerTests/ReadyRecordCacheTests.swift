import SwerveCore
@testable import SwerveController
import Testing

@Suite struct ReadyRecordCaching {
    let endpoint = ReplicaEndpoint(address: HostPort(host: "10.0.0.1", port: 4000), pid: 7)
    let moved = ReplicaEndpoint(address: HostPort(host: "10.0.0.1", port: 4001), pid: 8)

    @Test func theSameBytesAreNotDecodedAgainAndOtherBytesAre() {
        var cache = ReadyRecordCache()
        var decoded = 0
        let record = Array("ready-1".utf8)
        #expect(cache.endpoint("api#1", record) { _ in decoded += 1; return endpoint } == endpoint)
        #expect(cache.endpoint("api#1", record) { _ in decoded += 1; return moved } == endpoint, "unchanged: the cached endpoint")
        #expect(decoded == 1)
        #expect(cache.endpoint("api#1", Array("ready-2".utf8)) { _ in decoded += 1; return moved } == moved, "changed: decoded")
        #expect(decoded == 2)
        // A record that cannot be read is decoded (and reported) every time.
        #expect(cache.endpoint("api#2", Array("garbage".utf8)) { _ in decoded += 1; return nil } == nil)
        #expect(cache.endpoint("api#2", Array("garbage".utf8)) { _ in decoded += 1; return nil } == nil)
        #expect(decoded == 4)
        cache.forget("api#1")
        #expect(cache.endpoint("api#1", Array("ready-2".utf8)) { _ in decoded += 1; return moved } == moved)
        #expect(decoded == 5, "forgotten: decoded again")
    }

    @Test func aFullReadKeepsOnlyWhatItRead() {
        var cache = ReadyRecordCache()
        for tag in ["a#1", "a#2", "a#3"] { _ = cache.endpoint(tag, Array(tag.utf8)) { _ in endpoint } }
        #expect(cache.count == 3)
        cache.beginFullRead()
        _ = cache.endpoint("a#2", Array("a#2".utf8)) { _ in endpoint }
        cache.endFullRead()
        #expect(cache.count == 1, "replicas the full read did not find leave the cache")
    }
}
