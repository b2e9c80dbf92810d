/// Runs `ambit-ca` with `arguments` (without the program's name): what the `ambit-ca` executable and the
/// multi-call `ambit` executable of the image call.
public func ambitCAMain(arguments: [String]) async {
    await AmbitCACommand.main(arguments)
}
