// The interactive shell: `redcloud` with no command.
//
// On a terminal it reads lines with libedit (prompt `redcloud> `, history kept
// in the config folder across runs, tab completion of command names, local
// paths and the user's tags); otherwise it reads plain lines from stdin. Each
// line runs as one command (commands.h) with the session's options. `exit`,
// `quit` and Ctrl-D print "Goodbye!"; Ctrl-C drops the current line.
// Single-threaded.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "client/command_line.h"

namespace redcloud::client {

// Runs the shell until exit or end of input; returns the exit code (0).
int runShell(const GlobalOptions& session);

// What the completer knows; a seam for tests.
struct CompletionSource {
  std::function<std::vector<std::string>()> tags;  // the user's tags
  std::function<std::vector<std::string>(const std::string& partial)> paths;
};

// Completions for the word being typed at the end of `lineBeforeCursor`,
// unescaped and in full (directories end with '/'). Empty on unbalanced quotes.
std::vector<std::string> completeLine(const std::string& lineBeforeCursor,
                                      const CompletionSource& source);

// Local paths starting with `partial` ("dir/fi" → "dir/file.txt", "dir/sub/").
std::vector<std::string> completeLocalPath(const std::string& partial);

// Backslash-escapes what splitShellWords would otherwise split or unquote.
std::string escapeShellWord(const std::string& word);

// The line as kept in history: passwords given on login/register lines dropped.
std::string historyEntry(const std::string& line);

}  // namespace redcloud::client
