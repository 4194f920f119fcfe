import SwerveErrors
import SwerveSystem
import Testing

@Suite struct FailpointPlans {
    let known = ["a.one", "a.two"]

    @Test func nothingIsArmedByDefault() throws {
        let none = try Failpoints.parse(nil, known: known)
        #expect(none.plan.isEmpty)
        #expect(try Failpoints.parse("", known: known).plan.isEmpty)
        try none.hit("a.one") // inert: returns
    }

    @Test func entriesNameAnActionAndOptionallyAHit() throws {
        let failpoints = try Failpoints.parse("a.one=crash; a.two=error@3", known: known)
        #expect(failpoints.plan == ["a.one": .init(action: .crash), "a.two": .init(action: .error, onHit: 3)])
    }

    @Test func anArmedPointFiresOnceOnItsHitAndIsInertAfter() throws {
        let failpoints = try Failpoints.parse("a.two=error@2", known: known)
        #expect(failpoints.isArmed("a.two"))
        try failpoints.hit("a.two")
        #expect(throws: FailpointError.self) { try failpoints.hit("a.two") }
        #expect(!failpoints.isArmed("a.two"))
        try failpoints.hit("a.two")
        #expect(!failpoints.isArmed("a.one"))
    }

    @Test func typosAreRefusedNamingTheEntry() {
        #expect(throws: FailpointError.self) { try Failpoints.parse("a.three=crash", known: known) }
        #expect(throws: FailpointError.self) { try Failpoints.parse("a.one=explode", known: known) }
        #expect(throws: FailpointError.self) { try Failpoints.parse("a.one=error@0", known: known) }
        #expect(throws: FailpointError.self) { try Failpoints.parse("a.one", known: known) }
        do {
            _ = try Failpoints.parse("a.one=crash,a.thre=crash", known: known)
            Issue.record("a typo was accepted")
        } catch {
            #expect(error.message == "SWERVE_FAILPOINTS: unknown failpoint 'a.thre'; known: a.one, a.two")
        }
    }
}
