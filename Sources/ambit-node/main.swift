import AmbitNodeApp

// `ambit-node`: everything is in AmbitNodeApp, which the image's multi-call `ambit` executable shares.
await ambitNodeMain(arguments: Array(CommandLine.arguments.dropFirst()))
