/// Runs `ambit-node` with `arguments` (without the program's name): what the `ambit-node` executable and the
/// multi-call `ambit` executable of the image call.
public func ambitNodeMain(arguments: [String]) async {
    await AmbitNodeCommand.main(arguments)
}
