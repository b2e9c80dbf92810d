/// A failure of a lab command, phrased for the operator: what went wrong and, where possible, what to do.
///
/// `ambitctl` prints it as `Error: <description>` and exits with status 1.
public struct LabError: Error, CustomStringConvertible, Sendable {
    public let description: String
    /// Where the error was raised, for bug reports; not part of the message.
    public let file: String
    public let line: Int

    public init(_ description: String, file: String = #fileID, line: Int = #line) {
        self.description = description
        self.file = file
        self.line = line
    }
}
