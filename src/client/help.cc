#include "client/help.h"

#include <fmt/format.h>

namespace redcloud::client {

const std::vector<CommandInfo>& commandTable() {
  static const std::vector<CommandInfo> kTable = {
      {"register", "register USER [PASSWORD]", "create an account and log in",
       "Without PASSWORD the password is asked for without echo;\n"
       "--password-stdin reads it from the first line of standard input.\n"
       "Usernames: 1-64 of A-Z a-z 0-9 . _ -; passwords: at least 8 bytes."},
      {"login", "login USER [PASSWORD]", "log in and save the API key",
       "Without PASSWORD the password is asked for without echo;\n"
       "--password-stdin reads it from the first line of standard input."},
      {"logout", "logout [--all]", "log out (the API key stops working)",
       "--all revokes every key of the user (every login, every device),\n"
       "on every controller."},
      {"whoami", "whoami", "show the user and controller in use", ""},
      {"add", "add FILE... TAG...  |  add FILE... -t TAG...", "upload files with tags",
       "Without -t, leading arguments that name existing local files are files\n"
       "and the rest are tags; an argument containing '/' that names no file is\n"
       "an error. -t TAG may repeat; --tags a,b gives several. Uploading an\n"
       "existing name replaces that file."},
      {"list", "list [TAG...]", "list files having all the tags (none: all files)", ""},
      {"delete", "delete TAG... [-y]", "delete the files having all the tags",
       "The shell asks for confirmation unless -y is given."},
      {"add-tags", "add-tags QUERY... -- TAG...", "add tags to the files matching the query",
       "Without '--' the last word is the one new tag."},
      {"delete-tags", "delete-tags QUERY... -- TAG...",
       "remove tags from the files matching the query",
       "Without '--' the last word is the one tag to remove. Files that would be\n"
       "left without tags are skipped and listed."},
      {"download", "download NAME [DEST]", "download a file",
       "DEST is a file path or an existing folder (default: the current folder).\n"
       "The file is written to a temporary file, verified against its SHA-256 and\n"
       "renamed only when complete."},
      {"tags", "tags", "list your tags with their file counts", ""},
      {"status", "status", "show the cluster's controllers and chunkservers", ""},
      {"help", "help [COMMAND]", "show help", ""},
      {"clear", "clear", "clear the screen", "", true},
      {"exit", "exit", "leave the shell (also Ctrl-D)", "", true},
  };
  return kTable;
}

const CommandInfo* findCommand(const std::string& name) {
  for (const auto& c : commandTable()) {
    if (c.name == name) return &c;
  }
  if (name == "quit") return findCommand("exit");
  return nullptr;
}

std::string helpOverview(bool inShell) {
  std::string out = inShell ? "Commands:\n"
                            : "Usage: redcloud [OPTIONS] [COMMAND [ARGS]...]\n"
                              "With no command, opens the interactive shell.\n\n"
                              "Commands:\n";
  for (const auto& c : commandTable()) {
    if (c.shellOnly && !inShell) continue;
    out += fmt::format("  {:<46} {}\n", c.usage, c.summary);
  }
  out +=
      "\nTag queries match files having ALL the tags. '--' separates a query from\n"
      "the tags to add or remove, and ends options so a tag may start with '-'.\n\n"
      "Options (before or after the command):\n"
      "  --controller URL[,URL...]  controllers to use (env REDCLOUD_CONTROLLER)\n"
      "  --config FILE              the client's state file\n"
      "  --cacert FILE              CA certificate to trust for https:// controllers\n"
      "                             (env REDCLOUD_CACERT; default: the system's CAs)\n"
      "  --json                     print the server's JSON answer\n"
      "  -q, --quiet                no progress bar\n"
      "  -y, --yes                  do not ask for confirmation\n"
      "  --password-stdin           read the password from standard input\n\n"
      "Examples:\n"
      "  add report.pdf notes.txt work 2024\n"
      "  list work\n"
      "  add-tags work -- urgent review\n"
      "  download report.pdf ~/Downloads/\n";
  if (!inShell) {
    out +=
        "\nDaemons and operators: redcloud server | controller | chunkserver --help,\n"
        "redcloud node forget NODE_ID (remove a node that is gone for good).\n";
  }
  if (inShell) out += "\nType 'help COMMAND' for details.\n";
  return out;
}

std::optional<std::string> commandHelp(const std::string& name) {
  const CommandInfo* c = findCommand(name);
  if (c == nullptr) return std::nullopt;
  std::string out = "Usage: " + c->usage + "\n" + c->summary + "\n";
  if (!c->details.empty()) out += "\n" + c->details + "\n";
  return out;
}

}  // namespace redcloud::client
