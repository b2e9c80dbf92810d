import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

extension Error {
    /// What went wrong, in words a person reads in an error message: a file operation's system
    /// error (`No such file or directory`) rather than FoundationEssentials' structural dump of
    /// it, which is all `\(error)` gives without full Foundation.
    public var readableDescription: String {
        if let cocoa = self as? CocoaError {
            if let posix = cocoa.underlying as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
            switch cocoa.code {
            case .fileNoSuchFile, .fileReadNoSuchFile: return "No such file or directory"
            case .fileReadNoPermission, .fileWriteNoPermission: return "Permission denied"
            case .fileReadInapplicableStringEncoding, .fileReadCorruptFile: return "not valid UTF-8 text"
            default: return "error \(cocoa.code.rawValue)"
            }
        }
        if let posix = self as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        return String(describing: self)
    }
}
