import Foundation
import Glibc
import Logging
import Testing

@testable import AmbitTelemetry

/// The JSON log as processes write it: lines go to the descriptor from a thread of the sink's own, in
/// batches, so the thread that logs (an event loop, once per request or connection) makes no `write(2)`.
@Suite struct BackgroundLogWriterTests {
    /// A pipe whose read end the test reads. `close()` it after the sink that writes to it: a sink's
    /// thread must not write to a descriptor number that something else may have been given since.
    final class LogPipe {
        let readEnd: Int32
        let writeEnd: Int32

        init(pipeSize: Int32? = nil) {
            var fds: [Int32] = [0, 0]
            precondition(pipe(&fds) == 0)
            (readEnd, writeEnd) = (fds[0], fds[1])
            if let pipeSize { _ = fcntl(writeEnd, 1031, pipeSize) }  // F_SETPIPE_SZ
        }

        func close() {
            Glibc.close(readEnd)
            Glibc.close(writeEnd)
        }

        /// Complete lines as they arrive, until `done` says so or nothing arrives for `quiet` ms.
        func lines(quiet: Int32 = 5_000, until done: ([String]) -> Bool) -> [String] {
            var bytes: [UInt8] = []
            var lines: [String] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while !done(lines) {
                var ready = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
                guard poll(&ready, 1, quiet) > 0 else { break }
                let got = chunk.withUnsafeMutableBytes { Glibc.read(readEnd, $0.baseAddress, $0.count) }
                guard got > 0 else { break }
                bytes += chunk[..<got]
                while let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                    lines.append(String(decoding: bytes[..<newline], as: UTF8.self))
                    bytes.removeSubrange(...newline)
                }
            }
            return lines
        }

        var bytesWaiting: Int32 {
            var count: Int32 = 0
            _ = ioctl(readEnd, UInt(FIONREAD), &count)
            return count
        }
    }

    static func logger(_ sink: LogSink) -> Logger {
        Logger(label: "test") { JSONLogHandler(label: $0, sink: sink) }
    }

    static func message(_ line: String) -> String? {
        let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        return object?["message"] as? String
    }

    /// Lines logged in a burst arrive whole and in order, without a flush, in far fewer writes.
    @Test func aBurstOfLinesIsWrittenInOrderInAFewWrites() {
        let pipe = LogPipe()
        let sink = LogSink(backgroundFileDescriptor: pipe.writeEnd, flushInterval: .milliseconds(200))
        defer { (sink.close(), pipe.close()) }
        let logger = Self.logger(sink)
        for index in 0..<200 { logger.info("line \(index)") }
        let lines = pipe.lines { $0.count >= 200 }
        #expect(lines.map(Self.message) == (0..<200).map { "line \($0)" })
        #expect(sink.flush(timeout: .seconds(5)))
        let batches = sink.batchesWritten
        #expect((1...5).contains(batches), "\(batches) writes for 200 lines")
    }

    /// A warning is not held back to join a batch, and the lines before it come first.
    @Test func aWarningIsWrittenAtOnceAfterTheLinesBeforeIt() {
        let pipe = LogPipe()
        let sink = LogSink(backgroundFileDescriptor: pipe.writeEnd, flushInterval: .seconds(600))
        defer { (sink.close(), pipe.close()) }
        let logger = Self.logger(sink)
        logger.info("first")
        logger.warning("second")
        let lines = pipe.lines { $0.count >= 2 }
        #expect(lines.map(Self.message) == ["first", "second"])
    }

    /// `flush()` returns once every line logged before it is in the descriptor.
    @Test func flushWritesWhatWasLogged() {
        let pipe = LogPipe()
        let sink = LogSink(backgroundFileDescriptor: pipe.writeEnd, flushInterval: .seconds(600))
        defer { (sink.close(), pipe.close()) }
        let logger = Self.logger(sink)
        #expect(sink.flush(timeout: .seconds(5)), "nothing to write")
        for index in 0..<3 { logger.info("line \(index)") }
        #expect(pipe.bytesWaiting == 0, "an info line waits for its batch")
        #expect(sink.flush(timeout: .seconds(5)))
        #expect(pipe.bytesWaiting > 0)
        #expect(pipe.lines(quiet: 0) { $0.count >= 3 }.map(Self.message) == ["line 0", "line 1", "line 2"])
    }

    /// Nobody reads the log: logging never blocks; once the waiting bytes reach the capacity, lines are
    /// dropped whole and counted, and when the reader comes back the log says how many.
    @Test func aStuckReaderCostsLinesNotTheLogger() throws {
        let pipe = LogPipe(pipeSize: 4096)
        let filler = [UInt8](repeating: UInt8(ascii: "f"), count: 4095) + [UInt8(ascii: "\n")]
        #expect(filler.withUnsafeBytes { write(pipe.writeEnd, $0.baseAddress, $0.count) } == filler.count)
        let sink = LogSink(
            backgroundFileDescriptor: pipe.writeEnd,
            flushInterval: .milliseconds(1),
            capacity: 8192
        )
        defer { (sink.close(), pipe.close()) }
        let logger = Self.logger(sink)
        let logged = DispatchSemaphore(value: 0)
        Thread {
            for index in 0..<1000 { logger.info("line \(index)") }
            logged.signal()
        }.start()
        #expect(logged.wait(timeout: .now() + 30) == .success, "logging blocked on the stuck reader")
        let dropped = sink.droppedLines
        #expect(dropped > 0)
        let metrics = MeshMetrics(droppedLogLines: { sink.droppedLines })
        let scrape = metrics.render()
        #expect(scrape.contains("\nambit_log_lines_dropped_total \(dropped)\n"), "\(scrape)")
        #expect(metrics.render() == scrape, "a scrape counts each drop once")

        // Read until the warnings account for every line dropped. A warning comes where its lines were
        // dropped: its count is the gap in the numbers of the lines kept that follows it.
        func reported(_ lines: [String]) -> [Int] {
            lines.compactMap { line in
                guard line.contains("log lines dropped") else { return nil }
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["level"] as? String == "warning", "\(line)")
                return object?["count"] as? Int ?? 0
            }
        }
        let lines = pipe.lines { reported($0).reduce(0, +) >= dropped }
        #expect(lines.first == String(repeating: "f", count: 4095))
        var next = 0
        var gapExpected: Int?
        for line in lines.dropFirst() {
            if let count = reported([line]).first {
                #expect(gapExpected == nil, "two warnings in a row")
                gapExpected = count
                continue
            }
            let message = Self.message(line) ?? "not JSON: \(line)"
            let number = try #require(Int(message.dropFirst("line ".count)), "\(message)")
            #expect(number - next == (gapExpected ?? 0), "line \(number) after line \(next - 1)")
            (next, gapExpected) = (number + 1, nil)
        }
        #expect(1000 - next == (gapExpected ?? 0), "the last lines dropped are reported")
        #expect(reported(lines).reduce(0, +) == dropped)

        logger.info("after")
        #expect(sink.flush(timeout: .seconds(5)))
        #expect(pipe.lines { !$0.isEmpty }.map(Self.message) == ["after"])
        #expect(sink.droppedLines == dropped)
    }
}
