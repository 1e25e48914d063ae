#!/usr/bin/env node
// Present before the build so npm links the command at install time; the program is in dist/.
require('../dist/cli.js').runCli(process.argv.slice(2))
