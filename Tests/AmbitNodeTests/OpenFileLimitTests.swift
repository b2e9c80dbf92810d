import AmbitProcess
import Logging
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Daemons raise their soft open-files limit to the hard one (10,000 proxied connections need about as many
/// descriptors on each side).
@Suite struct OpenFileLimitTests {
    @Test func theSoftLimitIsRaisedToTheHardLimit() throws {
        let start = OpenFileLimit.current
        try #require(start.hard > 1024)
        // Lowered by one only: other tests of this process keep their descriptors.
        var lowered = rlimit(rlim_cur: rlim_t(start.hard - 1), rlim_max: rlim_t(start.hard))
        try #require(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lowered) == 0)
        #expect(OpenFileLimit.current.soft == start.hard - 1)
        let raised = OpenFileLimit.raiseToHardLimit(logger: Logger(label: "test"))
        #expect(raised == OpenFileLimit.Limits(soft: start.hard, hard: start.hard))
        #expect(OpenFileLimit.current.soft == start.hard)
    }
}
