public import FoundationEssentials
public import Glibc
import SwiftASN1
public import X509

/// Reading and writing PEM files with the permissions key material needs.
public enum PEMFiles {
    /// Writes `contents` atomically (temporary file + rename) with `mode` set before any byte
    /// is written, so a private key is never readable by others, not even briefly.
    public static func write(_ contents: String, to path: String, mode: mode_t, overwrite: Bool = true) throws {
        if !overwrite, FileManager.default.fileExists(atPath: path) {
            throw IdentityError(.caExists, "\(path) already exists; refusing to overwrite it")
        }
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw IdentityError(.fileWriteFailed, "cannot create \(temporary): \(String(cString: strerror(errno)))")
        }
        var ok = fchmod(fd, mode) == 0  // the umask may have narrowed or widened nothing else; be exact
        let bytes = Array(contents.utf8)
        var written = 0
        while ok && written < bytes.count {
            let result = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if result < 0 {
                if errno == EINTR { continue }
                ok = false
            } else {
                written += result
            }
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw IdentityError(.fileWriteFailed, "cannot write \(path): \(reason)")
        }
    }

    /// Reads a text file, with an error that names it.
    public static func read(_ path: String, code: IdentityErrorCode = .caUnreadable) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw IdentityError(code == .caUnreadable ? .caMissing : code, "\(path) does not exist")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IdentityError(code, "\(path) cannot be read (check its permissions)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// All certificates in a PEM file, in order.
    public static func certificates(in path: String, code: IdentityErrorCode = .caUnreadable) throws -> [Certificate] {
        let text = try read(path, code: code)
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: text)
        } catch {
            throw IdentityError(code == .caUnreadable ? .caInvalid : code, "\(path) is not valid PEM: \(error)")
        }
        guard !documents.isEmpty else {
            throw IdentityError(code == .caUnreadable ? .caInvalid : code, "\(path) holds no certificate")
        }
        return try documents.enumerated().map { index, document in
            do {
                return try Certificate(pemDocument: document)
            } catch {
                throw IdentityError(
                    code == .caUnreadable ? .caInvalid : code,
                    "\(path): PEM block \(index + 1) is not a valid certificate: \(error)"
                )
            }
        }
    }

    /// PEM text of several certificates, concatenated.
    public static func pem(_ certificates: [Certificate]) throws -> String {
        try certificates.map { try $0.serializeAsPEM().pemString + "\n" }.joined()
    }
}
