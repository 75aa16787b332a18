#include "client/command_line.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>

#include "common/validate.h"

namespace redcloud::client {
namespace {

// Consumes one shell word starting at `i`; returns false on unbalanced quotes.
bool readShellWord(std::string_view line, size_t& i, std::string& word) {
  while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\n') {
    char c = line[i++];
    if (c == '\\') {
      if (i < line.size()) word += line[i++];
    } else if (c == '\'') {
      size_t end = line.find('\'', i);
      if (end == std::string_view::npos) return false;
      word.append(line.substr(i, end - i));
      i = end + 1;
    } else if (c == '"') {
      for (;;) {
        if (i >= line.size()) return false;
        char d = line[i++];
        if (d == '"') break;
        if (d == '\\' && i < line.size() &&
            std::string_view("\"\\$`\n").find(line[i]) != std::string_view::npos) {
          d = line[i++];
        }
        word += d;
      }
    } else {
      word += c;
    }
  }
  return true;
}

bool isBlank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Options that take a value: returns the option's canonical name or "".
std::string valueOptionName(std::string_view word) {
  for (std::string_view name : {"--controller", "--config", "--cacert", "--tags", "-t"}) {
    if (word == name) return std::string(name);
  }
  return "";
}

Status applyValueOption(const std::string& name, const std::string& value, CommandLine& cl) {
  if (name == "--controller") {
    cl.global.controller = value;
  } else if (name == "--config") {
    cl.global.configPath = value;
  } else if (name == "--cacert") {
    cl.global.caCert = value;
  } else if (name == "--tags") {
    for (auto& t : splitCommaList(value)) cl.optionTags.push_back(t);
    cl.tagsOptionGiven = true;
  } else {
    cl.optionTags.push_back(value);
    cl.tagsOptionGiven = true;
  }
  return Status::ok();
}

// Applies one flag (no value); false when `word` is not a known flag.
bool applyFlag(std::string_view word, CommandLine& cl) {
  if (word == "--json")
    cl.global.json = true;
  else if (word == "-q" || word == "--quiet")
    cl.global.quiet = true;
  else if (word == "-y" || word == "--yes")
    cl.yes = true;
  else if (word == "--password-stdin")
    cl.passwordStdin = true;
  else if (word == "--all")
    cl.all = true;
  else if (word == "-h" || word == "--help")
    cl.help = true;
  else if (word == "--version")
    cl.version = true;
  else
    return false;
  return true;
}

// Grouped short flags such as -qy.
bool applyShortFlagGroup(std::string_view word, CommandLine& cl) {
  if (word.size() < 3 || word[0] != '-' || word[1] == '-') return false;
  for (char c : word.substr(1)) {
    if (std::string_view("qyh").find(c) == std::string_view::npos) return false;
  }
  for (char c : word.substr(1)) applyFlag(std::string("-") + c, cl);
  return true;
}

void addPositional(const std::string& word, CommandLine& cl) {
  if (cl.command.empty() && cl.args.empty() && !cl.separator) {
    cl.command = word;
  } else {
    cl.args.push_back(word);
  }
}

// Parses one option word (and maybe its value at words[i + 1]).
Status parseOption(const std::vector<std::string>& words, size_t& i, CommandLine& cl) {
  const std::string& w = words[i];
  std::string name = valueOptionName(w);
  if (!name.empty()) {
    if (i + 1 >= words.size()) return usageError("option " + w + " requires a value");
    return applyValueOption(name, words[++i], cl);
  }
  size_t eq = w.find('=');
  if (w.rfind("--", 0) == 0 && eq != std::string::npos) {
    name = valueOptionName(std::string_view(w).substr(0, eq));
    if (!name.empty()) return applyValueOption(name, w.substr(eq + 1), cl);
  }
  if (applyFlag(w, cl) || applyShortFlagGroup(w, cl)) return Status::ok();
  return usageError("unknown option: " + w);
}

// Trims, drops empty items, validates, removes duplicates.
Result<std::vector<std::string>> cleanTags(const std::vector<std::string>& raw) {
  std::vector<std::string> out;
  for (const auto& item : raw) {
    std::string t(trim(item));
    if (t.empty()) continue;
    RC_RETURN_IF_ERROR(validateTag(t));
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  }
  return out;
}

std::vector<std::string> splitWords(const std::vector<std::string>& words) {
  std::vector<std::string> out;
  for (const auto& w : words) {
    for (auto& item : splitCommaList(w)) out.push_back(item);
  }
  return out;
}

Status rejectOptions(const CommandLine& cl, bool allowTags, bool allowYes, bool allowPassword) {
  if (cl.tagsOptionGiven && !allowTags) return usageError(cl.command + " takes no -t/--tags");
  if (cl.yes && !allowYes) return usageError(cl.command + " takes no -y");
  if (cl.passwordStdin && !allowPassword) {
    return usageError(cl.command + " takes no --password-stdin");
  }
  if (cl.all && cl.command != "logout") return usageError(cl.command + " takes no --all");
  return Status::ok();
}

Status checkLocalFile(const std::string& path, PathKind kind) {
  switch (kind) {
    case PathKind::kFile:
      return Status::ok();
    case PathKind::kMissing:
      return {StatusCode::kFileNotFound, "File not found: " + path};
    case PathKind::kDirectory:
      return ioError("Not a file: " + path + " is a directory");
    case PathKind::kOther:
      return ioError("Not a regular file: " + path);
  }
  return Status::ok();
}

// Without -t: leading arguments naming local paths are files, the rest tags.
Status splitFilesAndTags(const CommandLine& cl, const FileProbe& probe, AddPlan& plan,
                         std::vector<std::string>& rawTags) {
  size_t i = 0;
  for (; i < cl.args.size(); ++i) {
    PathKind kind = probe(cl.args[i]);
    if (kind == PathKind::kMissing) break;
    RC_RETURN_IF_ERROR(checkLocalFile(cl.args[i], kind));
    plan.files.push_back(cl.args[i]);
  }
  if (plan.files.empty()) return checkLocalFile(cl.args[0], PathKind::kMissing);
  for (; i < cl.args.size(); ++i) {
    if (cl.args[i].find('/') != std::string::npos) {
      return checkLocalFile(cl.args[i], PathKind::kMissing);
    }
    rawTags.push_back(cl.args[i]);
  }
  return Status::ok();
}

}  // namespace

GlobalOptions GlobalOptions::mergedWith(const GlobalOptions& over) const {
  GlobalOptions g = *this;
  if (over.controller) g.controller = over.controller;
  if (over.configPath) g.configPath = over.configPath;
  if (over.caCert) g.caCert = over.caCert;
  g.json = json || over.json;
  g.quiet = quiet || over.quiet;
  return g;
}

std::string caCertFile(const GlobalOptions& options) {
  if (options.caCert) return *options.caCert;
  const char* env = std::getenv("REDCLOUD_CACERT");
  return env ? env : "";
}

Status usageError(std::string message) { return {StatusCode::kInvalidRequest, std::move(message)}; }

bool isUsageError(const Status& s) { return s.code() == StatusCode::kInvalidRequest; }

Result<std::vector<std::string>> splitShellWords(std::string_view line) {
  std::vector<std::string> words;
  size_t i = 0;
  for (;;) {
    while (i < line.size() && isBlank(line[i])) ++i;
    if (i >= line.size()) return words;
    std::string word;
    if (!readShellWord(line, i, word)) return usageError("Invalid syntax: No closing quotation");
    words.push_back(std::move(word));
  }
}

Result<CommandLine> parseCommandLine(const std::vector<std::string>& words) {
  CommandLine cl;
  bool optionsEnded = false;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (optionsEnded || w.size() < 2 || w[0] != '-') {
      addPositional(w, cl);
    } else if (w == "--") {
      optionsEnded = true;
      cl.separator = cl.args.size();
    } else {
      RC_RETURN_IF_ERROR(parseOption(words, i, cl));
    }
  }
  return cl;
}

PathKind probeLocalPath(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return PathKind::kMissing;
  if (S_ISREG(st.st_mode)) return PathKind::kFile;
  if (S_ISDIR(st.st_mode)) return PathKind::kDirectory;
  return PathKind::kOther;
}

Result<std::vector<std::string>> normalizeTagWords(const std::vector<std::string>& words) {
  return cleanTags(splitWords(words));
}

Result<AddPlan> planAdd(const CommandLine& cl, const FileProbe& probe) {
  RC_RETURN_IF_ERROR(rejectOptions(cl, true, false, false));
  AddPlan plan;
  std::vector<std::string> tags;
  if (cl.tagsOptionGiven) {
    if (cl.args.empty()) return usageError("add requires at least one file");
    for (const auto& f : cl.args) RC_RETURN_IF_ERROR(checkLocalFile(f, probe(f)));
    plan.files = cl.args;
    RC_ASSIGN_OR_RETURN(tags, cleanTags(cl.optionTags));
  } else {
    if (cl.args.size() < 2) return usageError("add requires at least one file and one tag");
    std::vector<std::string> rawTags;
    RC_RETURN_IF_ERROR(splitFilesAndTags(cl, probe, plan, rawTags));
    RC_ASSIGN_OR_RETURN(tags, normalizeTagWords(rawTags));
  }
  if (tags.empty()) return usageError("add requires at least one tag");
  plan.tags = std::move(tags);
  return plan;
}

Result<TagEditPlan> planTagEdit(const CommandLine& cl) {
  RC_RETURN_IF_ERROR(rejectOptions(cl, true, false, false));
  bool adding = cl.command == "add-tags";
  std::string what = adding ? "at least one new tag" : "at least one tag to remove";
  std::vector<std::string> args = cl.args;
  std::optional<size_t> sep = cl.separator;
  if (sep && *sep == 0) {  // `--` only ended options: a later `--` splits
    auto it = std::find(args.begin(), args.end(), "--");
    sep.reset();
    if (it != args.end()) {
      sep = static_cast<size_t>(it - args.begin());
      args.erase(it);
    }
  }
  std::vector<std::string> rawQuery, rawTags;
  if (cl.tagsOptionGiven) {
    rawQuery = args;
    rawTags = cl.optionTags;
  } else if (sep) {
    rawQuery.assign(args.begin(), args.begin() + static_cast<long>(*sep));
    rawTags.assign(args.begin() + static_cast<long>(*sep), args.end());
  } else {
    if (args.size() < 2) return usageError(cl.command + " requires tag-query and " + what);
    rawQuery.assign(args.begin(), args.end() - 1);
    rawTags.push_back(args.back());
  }
  TagEditPlan plan;
  RC_ASSIGN_OR_RETURN(plan.query, normalizeTagWords(rawQuery));
  RC_ASSIGN_OR_RETURN(plan.tags, normalizeTagWords(rawTags));
  if (plan.query.empty()) return usageError(cl.command + " requires tag-query");
  if (plan.tags.empty()) return usageError(cl.command + " requires " + what);
  return plan;
}

Result<std::vector<std::string>> planQuery(const CommandLine& cl, bool required) {
  RC_RETURN_IF_ERROR(rejectOptions(cl, true, required, false));
  std::vector<std::string> words = cl.args;
  words.insert(words.end(), cl.optionTags.begin(), cl.optionTags.end());
  RC_ASSIGN_OR_RETURN(auto tags, normalizeTagWords(words));
  if (required && tags.empty())
    return usageError(cl.command + " requires at least one tag in query");
  return tags;
}

Result<CredentialsPlan> planCredentials(const CommandLine& cl) {
  RC_RETURN_IF_ERROR(rejectOptions(cl, false, false, true));
  if (cl.args.empty() || cl.args.size() > 2) {
    return usageError(cl.command + " requires a username: " + cl.command +
                      " <username> [password]");
  }
  CredentialsPlan plan{cl.args[0], std::nullopt};
  if (cl.args.size() == 2) {
    if (cl.passwordStdin) return usageError("give a password or --password-stdin, not both");
    plan.password = cl.args[1];
  }
  return plan;
}

Result<DownloadPlan> planDownload(const CommandLine& cl) {
  RC_RETURN_IF_ERROR(rejectOptions(cl, false, false, false));
  if (cl.args.empty() || cl.args.size() > 2) {
    return usageError("download requires 1 or 2 arguments: <filename> [destination]");
  }
  DownloadPlan plan{cl.args[0], std::nullopt};
  if (cl.args.size() == 2) plan.dest = cl.args[1];
  return plan;
}

Status expectArgCount(const CommandLine& cl, size_t count) {
  RC_RETURN_IF_ERROR(rejectOptions(cl, false, false, false));
  if (cl.args.size() == count) return Status::ok();
  if (count == 0) return usageError(cl.command + " takes no arguments");
  return usageError(cl.command + " requires exactly " + std::to_string(count) + " argument(s)");
}

}  // namespace redcloud::client
