/// Runs `ambit-waypoint` with `arguments` (without the program's name): what the `ambit-waypoint` executable and the
/// multi-call `ambit` executable of the image call.
public func ambitWaypointMain(arguments: [String]) async {
    await AmbitWaypointCommand.main(arguments)
}
