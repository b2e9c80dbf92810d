import AmbitCAApp
import AmbitNodeApp
import AmbitWaypointApp
import AmbitctlApp
import Glibc

// `ambit`: the image's long-running programs and the CLI in one executable, so that they share one
// copy of the Swift runtime, Foundation, SwiftNIO and BoringSSL. It runs the program its name says
// (the image links ambit-node, ambit-ca, ambit-waypoint and ambitctl to it), or the one its first
// argument names: `ambit ambit-node --help`. ambit-cni is not in it: that plugin is copied onto the
// host and runs there, so it stays a small executable that needs nothing but glibc.

let programs = ["ambit-node", "ambit-ca", "ambit-waypoint", "ambitctl"]
let invokedAs = CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? ""
var program = invokedAs
var arguments = Array(CommandLine.arguments.dropFirst())
if !programs.contains(program) {
    guard let first = arguments.first, programs.contains(first) else {
        let asked = arguments.isEmpty || ["-h", "--help"].contains(arguments[0])
        let usage = """
            usage: ambit PROGRAM [ARGUMENTS...], or run it through a link named after the program
            programs: \(programs.joined(separator: ", "))

            """
        let text = asked ? usage : "error: unknown program \"\(arguments[0])\"\n" + usage
        _ = text.withCString { write(asked ? STDOUT_FILENO : STDERR_FILENO, $0, strlen($0)) }
        exit(asked ? 0 : 2)
    }
    program = first
    arguments.removeFirst()
}
switch program {
case "ambit-node": await ambitNodeMain(arguments: arguments)
case "ambit-ca": await ambitCAMain(arguments: arguments)
case "ambit-waypoint": await ambitWaypointMain(arguments: arguments)
default: ambitctlMain(arguments: arguments)
}
