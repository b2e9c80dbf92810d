import AmbitctlApp

// `ambitctl`: everything is in AmbitctlApp, which the image's multi-call `ambit` executable shares.
ambitctlMain(arguments: Array(CommandLine.arguments.dropFirst()))
