// Parsing of one client command line, shared by argv and the shell.
//
// A command line is a list of words (argv, or a shell line split by
// splitShellWords). parseCommandLine separates options from positional
// arguments; the plan* functions turn a parsed line into what one command
// needs, checking its arity. Pure functions except for the FileProbe seam, so
// tests drive them without a file system.
//
// Errors: a malformed command line is kInvalidRequest (exit code 2, see
// isUsageError); anything else (a missing local file, a bad tag) is another
// code (exit code 1).
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace redcloud::client {

// Options accepted by every command, before or after the command name.
struct GlobalOptions {
  std::optional<std::string> controller;  // --controller URL[,URL…]
  std::optional<std::string> configPath;  // --config FILE
  std::optional<std::string> caCert;      // --cacert FILE (https:// controllers)
  bool json = false;                      // --json
  bool quiet = false;                     // -q / --quiet

  // Fields set in `over` win over *this.
  GlobalOptions mergedWith(const GlobalOptions& over) const;
};

// --cacert, else REDCLOUD_CACERT, else "" (the system's CAs).
std::string caCertFile(const GlobalOptions& options);

struct CommandLine {
  std::string command;                  // empty: none given
  std::vector<std::string> args;        // positional arguments, in order
  std::vector<std::string> optionTags;  // from -t / --tags
  bool tagsOptionGiven = false;         // -t or --tags appeared
  std::optional<size_t> separator;      // index into args where `--` split them
  bool yes = false;                     // -y / --yes
  bool passwordStdin = false;           // --password-stdin
  bool all = false;                     // --all (logout: every key of the user)
  bool help = false;                    // -h / --help
  bool version = false;                 // --version
  GlobalOptions global;
};

// A usage error: a malformed command line (exit code 2).
Status usageError(std::string message);
bool isUsageError(const Status& s);

// Splits a shell line into words with POSIX shell quoting: whitespace
// separates, '…' is literal, "…" allows \" \\ \$ \`, a backslash outside
// quotes escapes the next character. Unbalanced quotes are a usage error.
Result<std::vector<std::string>> splitShellWords(std::string_view line);

// Separates options from arguments. The first `--` ends options (later `--`
// words are kept as arguments); its position is recorded in `separator`.
Result<CommandLine> parseCommandLine(const std::vector<std::string>& words);

// What a local path names, for telling files from tags in `add`.
enum class PathKind { kMissing, kFile, kDirectory, kOther };
using FileProbe = std::function<PathKind(const std::string& path)>;
PathKind probeLocalPath(const std::string& path);

struct AddPlan {
  std::vector<std::string> files;
  std::vector<std::string> tags;
};
// `add FILE… TAG…` or `add FILE… -t TAG…`.
Result<AddPlan> planAdd(const CommandLine& cl, const FileProbe& probe);

struct TagEditPlan {
  std::vector<std::string> query;
  std::vector<std::string> tags;
};
// `add-tags` / `delete-tags QUERY… -- TAG…`; without `--` the last word is
// the one tag (as in the original client).
Result<TagEditPlan> planTagEdit(const CommandLine& cl);

// Tags of `list` (may be empty) and `delete` (must not be).
Result<std::vector<std::string>> planQuery(const CommandLine& cl, bool required);

struct CredentialsPlan {
  std::string username;
  std::optional<std::string> password;
};
Result<CredentialsPlan> planCredentials(const CommandLine& cl);

struct DownloadPlan {
  std::string name;
  std::optional<std::string> dest;
};
Result<DownloadPlan> planDownload(const CommandLine& cl);

// Fails unless the command got exactly `count` positional arguments.
Status expectArgCount(const CommandLine& cl, size_t count);

// Splits each word on commas, trims, drops empty items, validates each tag
// and removes duplicates (first occurrence kept).
Result<std::vector<std::string>> normalizeTagWords(const std::vector<std::string>& words);

}  // namespace redcloud::client
