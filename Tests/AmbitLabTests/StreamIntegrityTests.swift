import Foundation
import Testing

/// Nothing lost, added or reordered on the data path: a quarter gibibyte of random bytes goes from a pod on node1
/// to the echo app of a pod on node2 and back, through both agents and an HBONE tunnel, with the SHA-256 of what
/// was sent compared to that of what came back; node1's telemetry must have counted the bytes each way. Part of
/// the serialized lab suite.
extension LabRootTests {
    static let quarterGibibyte = 256 << 20

    /// Sends a tag and `size` random bytes while reading the echo, half-closes, reads to the end; prints the count
    /// received and both digests.
    static let randomStream = """
        import hashlib, os, socket, sys, threading
        size = int(sys.argv[2])
        connection = socket.create_connection((sys.argv[1], 8080), timeout=120)
        sent, echoed, received = hashlib.sha256(), hashlib.sha256(), 0
        def send():
            tag = b"STREAM\\n"  # never taken for HTTP by the echo app
            sent.update(tag)
            connection.sendall(tag)
            left = size
            while left:
                chunk = os.urandom(min(1 << 20, left))
                sent.update(chunk)
                connection.sendall(chunk)
                left -= len(chunk)
            connection.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send)
        sender.start()
        while True:
            data = connection.recv(1 << 20)
            if not data:
                break
            echoed.update(data)
            received += len(data)
        sender.join()
        print(received, sent.hexdigest(), echoed.hexdigest())
        """

    @Test(arguments: captureModes)
    func aQuarterGibibyteOfRandomBytesCrossesTheMeshIntact(capture: String) throws {
        let lab = try TestLab(yaml: Self.meshLab)
        defer { lab.cleanUp() }
        let up = try lab.lab(["up", "--file", lab.labFile, "--capture", capture])
        try #require(up.status == 0, "\(up.all)")
        let serverIP = try #require(try lab.pods()["server"]?["ip"] as? String)
        let script = lab.directory.appendingPathComponent("stream.py")
        try Self.randomStream.write(to: script, atomically: true, encoding: .utf8)

        let run = try Self.exec(lab, "client", "python3 \(script.path) \(serverIP) \(Self.quarterGibibyte)")
        try #require(run.status == 0, "\(run.all)")
        let fields = run.standardOutput.split(whereSeparator: \.isWhitespace).map(String.init)
        try #require(fields.count == 3, "\(run.all)")
        #expect(Int(fields[0]) == Self.quarterGibibyte + 7, "bytes echoed: \(fields[0])")
        #expect(fields[1] == fields[2], "SHA-256 of what was sent \(fields[1]), of what came back \(fields[2])")

        // It went through the mesh: node1's agent (the source reporter) counted the bytes each way.
        func counted(_ metric: String) throws -> Double {
            try Self.metrics(lab, node: "node1").split(separator: "\n")
                .filter { $0.hasPrefix(metric + "{") && $0.contains("reporter=\"source\"") }
                .compactMap { Double($0.split(separator: " ").last ?? "") }
                .reduce(0, +)
        }
        let countedBoth = try Self.eventually(10) {
            try counted("istio_tcp_received_bytes_total") >= Double(Self.quarterGibibyte)
                && counted("istio_tcp_sent_bytes_total") >= Double(Self.quarterGibibyte)
        }
        let metrics = countedBoth ? "" : try Self.metrics(lab, node: "node1")
        #expect(countedBoth, "node1's agent did not count the stream: \(metrics)")
    }
}
