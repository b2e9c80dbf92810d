/// Runs `ambitctl` with `arguments` (without the program's name): what the `ambitctl` executable and the
/// multi-call `ambit` executable of the image call.
public func ambitctlMain(arguments: [String]) {
    Ambitctl.main(arguments)
}
