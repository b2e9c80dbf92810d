/// libFuzzer's entry point for a SwiftPM executable: SwiftPM links an executable's `main` to
/// `<Target>_main`, so each target defines that symbol and hands libFuzzer its arguments and the
/// target's one-input function here (`LLVMFuzzerRunDriver`, libFuzzer's API since LLVM 12).
@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

public enum FuzzDriver {
    /// Runs libFuzzer with the process's arguments (corpus directories, `-max_total_time=N`, …).
    public static func run(
        _ argc: CInt,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
        _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt {
        var count = argc
        var arguments = argv
        return runDriver(&count, &arguments, testOneInput)
    }

    /// The input as bytes.
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// Stops the run with a message libFuzzer reports as a crash, saving the input: a broken invariant.
    public static func violated(_ message: String) -> Never {
        fatalError("fuzz invariant violated: \(message)")
    }
}
