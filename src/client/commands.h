// Running the client's commands (API.md §3): one parsed command line in, its
// output on stdout, one `Error: …` line on stderr for a failure, an exit code
// out (0 success, 1 failure, 2 usage error).
//
// CommandRunner holds one command's state: the options (the session's under
// the line's own), the login state read fresh from the config file, and the
// API client. Used once per command; not thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "client/api_client.h"
#include "client/command_line.h"
#include "client/config.h"
#include "common/status.h"

namespace redcloud::client {

class CommandRunner {
 public:
  // `interactive`: running inside the shell (delete then asks to confirm).
  CommandRunner(CommandLine line, const GlobalOptions& session, bool interactive);

  // Runs the command; returns the exit code after printing any error.
  int run();

 private:
  Status dispatch();
  Status loadState();
  Status requireLogin() const;
  ApiClient makeApi(bool withKey) const;
  std::vector<std::string> chosenControllers() const;
  bool showProgress() const;
  void printJson(const nlohmann::json& j) const;

  Status runCredentials();
  Result<std::string> obtainPassword(bool isRegister) const;
  Status runLogout();
  Status runWhoami();
  Status runAdd();
  Status uploadOne(ApiClient& api, const std::string& file, const std::vector<std::string>& tags,
                   nlohmann::json& answers);
  Status runList();
  Status runDelete();
  Status runTagEdit();
  Status runDownload();
  Status runTags();
  Status runStatus();
  Status runHelp();

  CommandLine line_;
  GlobalOptions options_;
  bool interactive_;
  std::string configPath_;
  ClientConfig config_;
};

// Shorthand: parse nothing, just run.
int runCommandLine(const CommandLine& line, const GlobalOptions& session, bool interactive);

// The text printed for a failed command (without the "Error: " prefix).
std::string errorText(const Status& s);

// True for commands that change files or tags.
bool changesTags(const std::string& command);

}  // namespace redcloud::client
