// Entry point of the command-line client: `redcloud` with no arguments opens
// the interactive shell, `redcloud CMD ARGS` runs one command (API.md §3).
#pragma once

namespace redcloud::client {

// Runs the client with the process arguments (argv[0] is the program name).
// Returns the process exit code: 0 success, 1 failure, 2 usage error.
int runCli(int argc, char** argv);

}  // namespace redcloud::client
