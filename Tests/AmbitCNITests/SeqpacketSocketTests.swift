import AmbitCNI
import AmbitCapture
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct SeqpacketSocketTests {
    private func socketPath() -> String {
        NSTemporaryDirectory() + "ambit-seq-\(UInt32.random(in: 0...UInt32.max)).sock"
    }

    @Test func passesANamespaceDescriptorWithAMessage() throws {
        let path = socketPath()
        let server = try SeqpacketSocket.listen(path: path)
        defer { unlink(path) }
        var status = stat()
        #expect(stat(path, &status) == 0 && status.st_mode & 0o777 == 0o600)

        let client = try SeqpacketSocket.connect(path: path)
        let connection = try server.accept()
        let namespace = try NetworkNamespace.current()

        try client.send(Array("add-pod uid-1".utf8), fd: namespace.fd)
        try client.send([1, 2, 3])
        let first = try connection.receive()
        #expect(first.bytes == Array("add-pod uid-1".utf8))
        let received = try #require(first.fd)
        #expect(received != namespace.fd)
        // The descriptor is a new one on the same namespace.
        #expect(NetworkNamespace(adopting: received, path: "received").inode == namespace.inode)
        let second = try connection.receive()
        #expect(second.bytes == [1, 2, 3] && second.fd == nil)

        let credentials = try connection.peerCredentials()
        #expect(credentials.pid == getpid() && credentials.uid == getuid())

        client.close()
        let end = try connection.receive()
        #expect(end.bytes.isEmpty && end.fd == nil)
    }

    @Test func receiveTimesOut() throws {
        let path = socketPath()
        let server = try SeqpacketSocket.listen(path: path)
        defer { unlink(path) }
        let client = try SeqpacketSocket.connect(path: path)
        let connection = try server.accept()
        try client.setTimeout(receive: .milliseconds(50), send: nil)
        let error = #expect(throws: CNISocketError.self) { try client.receive() }
        #expect(error?.errno == EAGAIN)
        withExtendedLifetime(connection) {}
    }

    @Test func oversizedMessageIsAnError() throws {
        let path = socketPath()
        let server = try SeqpacketSocket.listen(path: path)
        defer { unlink(path) }
        let client = try SeqpacketSocket.connect(path: path)
        let connection = try server.accept()
        try client.send([UInt8](repeating: 7, count: 100))
        let error = #expect(throws: CNISocketError.self) { try connection.receive(maxSize: 10) }
        #expect(error?.errno == EMSGSIZE)
    }

    @Test func listenReplacesAStaleSocketFile() throws {
        let path = socketPath()
        defer { unlink(path) }
        let first = try SeqpacketSocket.listen(path: path)
        first.close()
        let second = try SeqpacketSocket.listen(path: path)
        _ = try SeqpacketSocket.connect(path: path)
        _ = try second.accept()
    }
}
