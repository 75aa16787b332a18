#include "client/cli.h"

#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "client/command_line.h"
#include "client/commands.h"
#include "client/shell.h"
#include "client/terminal.h"

namespace redcloud::client {

int runCli(int argc, char** argv) {
  installInterruptHandler();
  // A controller that hangs up mid-upload must give an error, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> words(argv + (argc > 0 ? 1 : 0), argv + argc);
  auto line = parseCommandLine(words);
  if (!line.isOk()) {
    std::cerr << "Error: " << line.status().message() << "\n"
              << "Run 'redcloud --help' for usage.\n";
    return 2;
  }
  if (line->command.empty() && !line->help && !line->version) return runShell(line->global);
  return runCommandLine(*line, GlobalOptions{}, /*interactive=*/false);
}

}  // namespace redcloud::client
