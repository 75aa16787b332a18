// The client's command list and help texts, shared by `help`, `--help` and
// the shell's completion of command names.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace redcloud::client {

struct CommandInfo {
  std::string name;
  std::string usage;    // e.g. "add FILE… TAG…"
  std::string summary;  // one line
  std::string details;  // several lines, for `help CMD`
  bool shellOnly = false;
};

const std::vector<CommandInfo>& commandTable();
const CommandInfo* findCommand(const std::string& name);

// The overview printed by `help` (shell) or `redcloud --help`.
std::string helpOverview(bool inShell);

// `help CMD`: the command's usage and details; nullopt for an unknown name.
std::optional<std::string> commandHelp(const std::string& name);

}  // namespace redcloud::client
