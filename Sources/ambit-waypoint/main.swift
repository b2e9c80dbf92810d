import AmbitWaypointApp

// `ambit-waypoint`: everything is in AmbitWaypointApp, which the image's multi-call `ambit` executable shares.
await ambitWaypointMain(arguments: Array(CommandLine.arguments.dropFirst()))
