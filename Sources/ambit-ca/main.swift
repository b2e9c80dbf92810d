import AmbitCAApp

// `ambit-ca`: everything is in AmbitCAApp, which the image's multi-call `ambit` executable shares.
await ambitCAMain(arguments: Array(CommandLine.arguments.dropFirst()))
