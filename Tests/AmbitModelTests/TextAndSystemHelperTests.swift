import FoundationEssentials
import Synchronization
import Testing

@testable import AmbitModel

#if canImport(Glibc)
    import Glibc
#endif

/// What replaced full Foundation's `NSString` path methods, `trimmingCharacters`, `padding`,
/// `caseInsensitiveCompare`, `JSONSerialization` of dictionaries and `Thread` in the daemons.
@Suite struct TextAndSystemHelperTests {
    @Test(arguments: [
        ("/a/b/c", "/a/b"), ("/a/b/", "/a"), ("/a", "/"), ("/", "/"), ("c", ""), ("a/b", "a"), ("//a//b", "//a"),
        ("", ""),
    ])
    func parentsAreNSStringsDeletingLastPathComponent(path: String, parent: String) {
        #expect(FilePaths.parent(of: path) == parent)
    }

    @Test func joinPutsOneSlashBetween() {
        #expect(FilePaths.join("/etc/ambit", "ca.pem") == "/etc/ambit/ca.pem")
        #expect(FilePaths.join("/etc/ambit/", "ca.pem") == "/etc/ambit/ca.pem")
        #expect(FilePaths.join("ca", "key.pem") == "ca/key.pem")
        #expect(FilePaths.join("", "key.pem") == "key.pem")
    }

    @Test func trimmingAndPadding() {
        #expect(" \t token\n\r\n".trimmingWhitespace() == "token")
        #expect(" a b \n".trimmingWhitespace(newlines: false) == "a b \n")
        #expect(" \n ".trimmingWhitespace() == "")
        // Unicode's white space, as Foundation's character sets had it: no-break and ideographic spaces.
        #expect("\u{a0}\u{3000}ns\u{2003}".trimmingWhitespace() == "ns")
        #expect("ab".padded(to: 4) == "ab  ")
        #expect("abcdef".padded(to: 4) == "abcdef")
        #expect("Content-Type".equalsIgnoringASCIICase("content-type"))
        #expect(!"Content-Type".equalsIgnoringASCIICase("content-typ"))
        #expect(!"a[".equalsIgnoringASCIICase("a{"))
        #expect(!"x-1".equalsIgnoringASCIICase("x-\u{11}"))
    }

    /// Status dumps built as dictionaries become the same JSON `JSONSerialization` wrote (keys sorted).
    @Test func dictionariesBecomeJSON() {
        let optional: String? = nil
        let dump: [String: Any] = [
            "name": "node1", "ready": true, "version": 7, "ratio": 0.5, "ports": [80, 443],
            "pods": [["uid": "u1"]] as [[String: Any]], "missing": optional as Any, "counts": ["a": UInt64(3)],
        ]
        #expect(
            JSONValue(dump).serialized()
                == #"{"counts":{"a":3},"missing":null,"name":"node1","pods":[{"uid":"u1"}],"ports":[80,443],"ratio":0.5,"ready":true,"version":7}"#
        )
    }

    /// A file error reads as the system's words, not as FoundationEssentials' structure.
    @Test func fileErrorsReadAsTheSystemSaysThem() {
        do {
            _ = try String(contentsOfFile: "/nonexistent/ambit/file", encoding: .utf8)
            Issue.record("read a file that does not exist")
        } catch {
            #expect(error.readableDescription == "No such file or directory")
        }
    }

    /// The body runs on a new thread of its own, named as asked.
    @Test func detachedThreadsRunNamed() async {
        let seen = Mutex<(name: String, sameThread: Bool)?>(nil)
        let caller = pthread_self()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let started = DetachedThread.start(name: "ambit-test") {
                let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
                seen.withLock { $0 = (comm.trimmingWhitespace(), pthread_equal(pthread_self(), caller) != 0) }
                continuation.resume()
            }
            #expect(started)
        }
        let result = seen.withLock { $0 }
        #expect(result?.name == "ambit-test")
        #expect(result?.sameThread == false)
    }
}
