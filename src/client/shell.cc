#include "client/shell.h"

#include <dirent.h>
#include <histedit.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "client/commands.h"
#include "client/config.h"
#include "client/controllers.h"
#include "client/help.h"
#include "client/terminal.h"
#include "common/validate.h"

namespace redcloud::client {
namespace {

constexpr const char* kPrompt = "redcloud> ";
constexpr int kHistorySize = 1000;

const char* kBanner =
    "RedCloud CLI - Tag-based File System\n"
    "Type 'help' for commands or 'exit' to quit.\n";

bool startsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::vector<std::string> filterPrefix(const std::vector<std::string>& items,
                                      const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& i : items) {
    if (startsWith(i, prefix) && std::find(out.begin(), out.end(), i) == out.end()) {
      out.push_back(i);
    }
  }
  return out;
}

std::vector<std::string> commandNames() {
  std::vector<std::string> out;
  for (const auto& c : commandTable()) out.push_back(c.name);
  return out;
}

const std::vector<std::string>& optionNames() {
  static const std::vector<std::string> kOptions = {
      "--controller",     "--config", "--json", "--quiet", "--tags", "--yes",
      "--password-stdin", "--help",   "-t",     "-q",      "-y"};
  return kOptions;
}

bool isTagCommand(const std::string& cmd) {
  return cmd == "list" || cmd == "delete" || cmd == "add-tags" || cmd == "delete-tags";
}

// Candidates for argument `index` (1-based) of `cmd`, given the previous word.
std::vector<std::string> argumentCandidates(const std::string& cmd, size_t index,
                                            const std::string& previous, const std::string& partial,
                                            const CompletionSource& source) {
  if (startsWith(partial, "-")) return filterPrefix(optionNames(), partial);
  if (previous == "-t") return filterPrefix(source.tags(), partial);
  if (cmd == "help")
    return index == 1 ? filterPrefix(commandNames(), partial) : std::vector<std::string>{};
  if (isTagCommand(cmd)) return filterPrefix(source.tags(), partial);
  if (cmd == "download") return index >= 2 ? source.paths(partial) : std::vector<std::string>{};
  if (cmd != "add") return {};
  std::vector<std::string> out = source.paths(partial);
  if (partial.find('/') == std::string::npos) {
    for (auto& t : filterPrefix(source.tags(), partial)) out.push_back(t);
  }
  return out;
}

std::string commonPrefix(const std::vector<std::string>& items) {
  if (items.empty()) return "";
  std::string prefix = items[0];
  for (const auto& i : items) {
    size_t n = 0;
    while (n < prefix.size() && n < i.size() && prefix[n] == i[n]) ++n;
    prefix.resize(n);
  }
  return prefix;
}

// The libedit front end; one per shell session.
class LineEditor {
 public:
  explicit LineEditor(const GlobalOptions& session);
  ~LineEditor();
  LineEditor(const LineEditor&) = delete;
  LineEditor& operator=(const LineEditor&) = delete;

  // Reads a line; nullopt at end of input. Ctrl-C gives an empty line.
  std::optional<std::string> readLine();
  void remember(const std::string& line);
  void forgetTags() { tags_.reset(); }

 private:
  static char* prompt(EditLine*) { return const_cast<char*>(kPrompt); }
  static unsigned char onTab(EditLine* el, int);
  unsigned char complete();
  std::vector<std::string> userTags();

  GlobalOptions session_;
  std::string historyPath_;
  EditLine* el_ = nullptr;
  History* history_ = nullptr;
  std::optional<std::vector<std::string>> tags_;
};

LineEditor::LineEditor(const GlobalOptions& session) : session_(session) {
  historyPath_ = configFolder(resolveConfigPath(session.configPath)) + "/history";
  HistEvent ev;
  history_ = history_init();
  history(history_, &ev, H_SETSIZE, kHistorySize);
  history(history_, &ev, H_SETUNIQUE, 1);
  history(history_, &ev, H_LOAD, historyPath_.c_str());
  el_ = el_init("redcloud", stdin, stdout, stderr);
  el_set(el_, EL_EDITOR, "emacs");
  el_set(el_, EL_PROMPT, &LineEditor::prompt);
  el_set(el_, EL_HIST, history, history_);
  el_set(el_, EL_CLIENTDATA, this);
  el_set(el_, EL_ADDFN, "rc-complete", "complete a word", &LineEditor::onTab);
  el_set(el_, EL_BIND, "^I", "rc-complete", nullptr);
}

LineEditor::~LineEditor() {
  el_end(el_);
  history_end(history_);
}

std::optional<std::string> LineEditor::readLine() {
  int count = 0;
  const char* line = el_gets(el_, &count);
  if (line == nullptr && interruptRequested()) {
    clearInterrupt();
    std::fputs("\n", stdout);
    return std::string();
  }
  if (line == nullptr || count <= 0) return std::nullopt;
  std::string s(line);
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

void LineEditor::remember(const std::string& line) {
  HistEvent ev;
  history(history_, &ev, H_ENTER, historyEntry(line).c_str());
  std::string folder = configFolder(historyPath_);
  ::mkdir(folder.c_str(), 0700);
  if (history(history_, &ev, H_SAVE, historyPath_.c_str()) >= 0) {
    ::chmod(historyPath_.c_str(), 0600);
  }
}

unsigned char LineEditor::onTab(EditLine* el, int) {
  void* data = nullptr;
  el_get(el, EL_CLIENTDATA, &data);
  return static_cast<LineEditor*>(data)->complete();
}

unsigned char LineEditor::complete() {
  const LineInfo* li = el_line(el_);
  std::string before(li->buffer, static_cast<size_t>(li->cursor - li->buffer));
  CompletionSource source{[this] { return userTags(); }, completeLocalPath};
  std::vector<std::string> matches = completeLine(before, source);
  if (matches.empty()) return CC_ERROR;
  auto words = splitShellWords(before);
  bool fresh = before.empty() || before.back() == ' ';
  std::string partial = fresh || !words.isOk() || words->empty() ? "" : words->back();
  std::string prefix = commonPrefix(matches);
  std::string insert = prefix.size() > partial.size() ? prefix.substr(partial.size()) : "";
  if (matches.size() == 1 && !prefix.empty() && prefix.back() != '/') {
    el_insertstr(el_, (escapeShellWord(insert) + " ").c_str());
    return CC_REFRESH;
  }
  if (!insert.empty()) {
    el_insertstr(el_, escapeShellWord(insert).c_str());
    return CC_REFRESH;
  }
  std::string list = "\n";
  for (const auto& m : matches) list += m + "  ";
  std::fputs((list + "\n").c_str(), stdout);
  return CC_REDISPLAY;
}

std::vector<std::string> LineEditor::userTags() {
  if (tags_) return *tags_;
  tags_.emplace();
  std::string path = resolveConfigPath(session_.configPath);
  auto config = loadConfig(path, nullptr);
  if (!config.isOk() || !config->loggedIn()) return *tags_;
  auto urls = chooseControllerUrls(environmentSources(session_.controller, config->controllers),
                                   resolveHostAddresses);
  ApiClientOptions quick;
  quick.rounds = 1;
  quick.connectTimeoutSeconds = 1;
  quick.readTimeoutSeconds = 3;
  quick.caCertFile = caCertFile(session_);
  ApiClient api(expandControllerUrls(urls, resolveHostAddresses), config->apiKey, quick);
  auto answer = api.call("GET", "/api/v1/tags");
  if (!answer.isOk() || !answer->contains("tags")) return *tags_;
  for (const auto& t : (*answer)["tags"]) {
    if (t.is_object() && t.contains("tag") && t["tag"].is_string()) {
      tags_->push_back(t["tag"].get<std::string>());
    }
  }
  return *tags_;
}

// Handles one line; false when the shell should end.
bool runLine(const std::string& raw, const GlobalOptions& session, LineEditor* editor) {
  std::string text(trim(raw));
  if (text.empty()) return true;
  if (text == "exit" || text == "quit") return false;
  if (text == "clear") {
    std::cout << "\x1b[H\x1b[2J" << kBanner << std::endl;
    return true;
  }
  auto words = splitShellWords(text);
  if (!words.isOk()) {
    std::cerr << "Error: " << words.status().message() << "\n";
    return true;
  }
  auto line = parseCommandLine(*words);
  if (!line.isOk()) {
    std::cerr << "Error: " << line.status().message() << "\n";
    return true;
  }
  runCommandLine(*line, session, /*interactive=*/true);
  clearInterrupt();
  if (editor != nullptr && changesTags(line->command)) editor->forgetTags();
  return true;
}

int runEditorLoop(const GlobalOptions& session) {
  std::cout << kBanner << std::endl;
  LineEditor editor(session);
  for (;;) {
    auto line = editor.readLine();
    if (!line) {
      std::cout << "\n";
      break;
    }
    if (trim(*line).empty()) continue;
    editor.remember(*line);
    if (!runLine(*line, session, &editor)) break;
  }
  std::cout << "Goodbye!" << std::endl;
  return 0;
}

int runPlainLoop(const GlobalOptions& session) {
  std::string line;
  while (readLineFd(STDIN_FILENO, line)) {
    if (!runLine(line, session, nullptr)) break;
  }
  std::cout << "Goodbye!" << std::endl;
  return 0;
}

}  // namespace

std::vector<std::string> completeLine(const std::string& lineBeforeCursor,
                                      const CompletionSource& source) {
  auto words = splitShellWords(lineBeforeCursor);
  if (!words.isOk()) return {};
  bool fresh = lineBeforeCursor.empty() || lineBeforeCursor.back() == ' ';
  std::vector<std::string> w = *words;
  if (fresh) w.emplace_back();
  const std::string& partial = w.back();
  if (w.size() == 1) return filterPrefix(commandNames(), partial);
  std::string previous = w.size() >= 2 ? w[w.size() - 2] : "";
  return argumentCandidates(w[0], w.size() - 1, previous, partial, source);
}

std::vector<std::string> completeLocalPath(const std::string& partial) {
  size_t slash = partial.find_last_of('/');
  std::string dirPart = slash == std::string::npos ? "" : partial.substr(0, slash + 1);
  std::string filePrefix = slash == std::string::npos ? partial : partial.substr(slash + 1);
  std::vector<std::string> out;
  DIR* dir = ::opendir(dirPart.empty() ? "." : dirPart.c_str());
  if (dir == nullptr) return out;
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || !startsWith(name, filePrefix)) continue;
    if (name[0] == '.' && !startsWith(filePrefix, ".")) continue;
    std::string full = dirPart + name;
    struct stat st;
    bool isDir = ::stat(full.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    out.push_back(isDir ? full + "/" : full);
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

std::string escapeShellWord(const std::string& word) {
  std::string out;
  for (char c : word) {
    if (c == ' ' || c == '\t' || c == '\\' || c == '\'' || c == '"') out += '\\';
    out += c;
  }
  return out;
}

std::string historyEntry(const std::string& line) {
  auto words = splitShellWords(line);
  if (!words.isOk()) return line;
  auto cl = parseCommandLine(*words);
  if (!cl.isOk() || (cl->command != "login" && cl->command != "register")) return line;
  if (cl->args.size() < 2) return line;
  return cl->command + " " + escapeShellWord(cl->args[0]);
}

int runShell(const GlobalOptions& session) {
  if (stdinIsTerminal()) return runEditorLoop(session);
  return runPlainLoop(session);
}

}  // namespace redcloud::client
