#include "client/commands.h"

#include <fmt/format.h>

#include <iostream>
#include <map>

#include "client/controllers.h"
#include "client/help.h"
#include "client/output.h"
#include "client/progress.h"
#include "client/terminal.h"
#include "client/transfer.h"
#include "common/validate.h"

namespace redcloud::client {
namespace {

using nlohmann::json;

constexpr const char* kVersion = "redcloud 0.1.0";

Status notLoggedIn() {
  return {StatusCode::kInvalidApiKey, "Not logged in. Please run: login <username>"};
}

std::string filesPath(const std::vector<std::string>& tags) {
  return tags.empty() ? "/api/v1/files" : "/api/v1/files?tags=" + tagsQuery(tags);
}

bool ownedByShellOnly(const std::string& command) {
  const CommandInfo* c = findCommand(command);
  return c != nullptr && c->shellOnly;
}

}  // namespace

std::string errorText(const Status& s) {
  std::string text = s.message();
  bool hint = s.code() == StatusCode::kInvalidApiKey && text.find("login") == std::string::npos;
  return hint ? text + " (run: login <username>)" : text;
}

bool changesTags(const std::string& command) {
  return command == "add" || command == "delete" || command == "add-tags" ||
         command == "delete-tags" || command == "login" || command == "register" ||
         command == "logout";
}

CommandRunner::CommandRunner(CommandLine line, const GlobalOptions& session, bool interactive)
    : line_(std::move(line)),
      options_(session.mergedWith(line_.global)),
      interactive_(interactive) {}

int CommandRunner::run() {
  Status s = dispatch();
  std::cout.flush();
  if (s.isOk()) return 0;
  std::cerr << "Error: " << errorText(s) << "\n";
  if (isUsageError(s) && !interactive_ && findCommand(line_.command) != nullptr) {
    std::cerr << "Usage: redcloud " << findCommand(line_.command)->usage << "\n";
  }
  return isUsageError(s) ? 2 : 1;
}

Status CommandRunner::dispatch() {
  using Handler = Status (CommandRunner::*)();
  static const std::map<std::string, Handler> kHandlers = {
      {"register", &CommandRunner::runCredentials},
      {"login", &CommandRunner::runCredentials},
      {"logout", &CommandRunner::runLogout},
      {"whoami", &CommandRunner::runWhoami},
      {"add", &CommandRunner::runAdd},
      {"list", &CommandRunner::runList},
      {"delete", &CommandRunner::runDelete},
      {"add-tags", &CommandRunner::runTagEdit},
      {"delete-tags", &CommandRunner::runTagEdit},
      {"download", &CommandRunner::runDownload},
      {"tags", &CommandRunner::runTags},
      {"status", &CommandRunner::runStatus},
      {"help", &CommandRunner::runHelp},
  };
  if (line_.version) {
    std::cout << kVersion << "\n";
    return Status::ok();
  }
  if (line_.help || line_.command.empty()) return runHelp();
  auto it = kHandlers.find(line_.command);
  if (it == kHandlers.end()) {
    if (ownedByShellOnly(line_.command))
      return usageError(line_.command + " only works in the shell");
    return usageError("Unknown command: " + line_.command);
  }
  RC_RETURN_IF_ERROR(loadState());
  return (this->*(it->second))();
}

Status CommandRunner::loadState() {
  configPath_ = resolveConfigPath(options_.configPath);
  std::string warning;
  RC_ASSIGN_OR_RETURN(config_, loadConfig(configPath_, &warning));
  if (!warning.empty()) std::cerr << "Warning: " << warning << "\n";
  return Status::ok();
}

Status CommandRunner::requireLogin() const {
  return config_.loggedIn() ? Status::ok() : notLoggedIn();
}

std::vector<std::string> CommandRunner::chosenControllers() const {
  return chooseControllerUrls(environmentSources(options_.controller, config_.controllers),
                              resolveHostAddresses);
}

ApiClient CommandRunner::makeApi(bool withKey) const {
  auto urls = expandControllerUrls(chosenControllers(), resolveHostAddresses);
  ApiClientOptions options;
  options.caCertFile = caCertFile(options_);
  return ApiClient(std::move(urls), withKey ? config_.apiKey : "", options);
}

bool CommandRunner::showProgress() const { return !options_.quiet && stderrIsTerminal(); }

void CommandRunner::printJson(const json& j) const { std::cout << j.dump(2) << "\n"; }

Status CommandRunner::runHelp() {
  std::string topic =
      line_.command == "help" ? (line_.args.empty() ? "" : line_.args[0]) : line_.command;
  if (topic.empty()) {
    std::cout << helpOverview(interactive_);
    return Status::ok();
  }
  auto text = commandHelp(topic);
  if (!text) return usageError("Unknown command: " + topic);
  std::cout << *text;
  return Status::ok();
}

Result<std::string> CommandRunner::obtainPassword(bool isRegister) const {
  if (line_.passwordStdin) return readPasswordFromStdin();
  RC_ASSIGN_OR_RETURN(std::string password, promptPassword("Password: "));
  if (!isRegister) return password;
  RC_ASSIGN_OR_RETURN(std::string again, promptPassword("Repeat password: "));
  if (again != password) return Status(StatusCode::kInvalidCredentials, "passwords do not match");
  return password;
}

Status CommandRunner::runCredentials() {
  bool isRegister = line_.command == "register";
  RC_ASSIGN_OR_RETURN(CredentialsPlan plan, planCredentials(line_));
  if (!plan.password) {
    RC_ASSIGN_OR_RETURN(plan.password, obtainPassword(isRegister));
  }
  ApiClient api = makeApi(false);
  json body = {{"username", plan.username}, {"password", *plan.password}};
  RC_ASSIGN_OR_RETURN(json answer,
                      api.call("POST", isRegister ? "/api/v1/auth/register" : "/api/v1/auth/login",
                               body, /*idempotent=*/!isRegister));
  if (!answer.is_object() || !answer.contains("api_key") || !answer["api_key"].is_string()) {
    return Status(StatusCode::kInternal, "the controller's answer has no api_key");
  }
  config_.username = answer.value("username", plan.username);
  config_.userId = answer.value("user_id", std::string());
  config_.apiKey = answer["api_key"].get<std::string>();
  config_.controllers = chosenControllers();
  RC_RETURN_IF_ERROR(saveConfig(configPath_, config_));
  if (options_.json) {
    printJson(answer);
  } else if (isRegister) {
    std::cout << "Registration successful!\nUser ID: " << config_.userId
              << "\nAPI key saved to config.\n";
  } else {
    std::cout << "Login successful!\nAPI key updated in config.\n";
  }
  return Status::ok();
}

Status CommandRunner::runLogout() {
  RC_RETURN_IF_ERROR(expectArgCount(line_, 0));
  RC_RETURN_IF_ERROR(requireLogin());
  ApiClient api = makeApi(true);
  auto answer =
      api.call("POST", line_.all ? "/api/v1/auth/logout?all=true" : "/api/v1/auth/logout");
  // The key is dropped locally whatever the server said: a key it rejects is dead already.
  config_.apiKey.clear();
  RC_RETURN_IF_ERROR(saveConfig(configPath_, config_));
  if (!answer.isOk() && answer.status().code() != StatusCode::kInvalidApiKey) {
    return Status(
        answer.status().code(),
        "logged out locally, but the controller did not confirm: " + answer.status().message());
  }
  uint64_t revoked = 0;
  if (answer.isOk() && answer->is_object() && answer->contains("revoked_keys") &&
      (*answer)["revoked_keys"].is_number_unsigned()) {
    revoked = (*answer)["revoked_keys"].get<uint64_t>();
  }
  if (options_.json) {
    json out{{"logged_out", true}, {"username", config_.username}};
    if (line_.all) out["revoked_keys"] = revoked;
    printJson(out);
  } else if (line_.all && answer.isOk()) {
    std::cout << "Logged out everywhere: " << revoked << " key" << (revoked == 1 ? "" : "s")
              << " revoked.\n";
  } else {
    std::cout << "Logged out.\n";
  }
  return Status::ok();
}

Status CommandRunner::runWhoami() {
  RC_RETURN_IF_ERROR(expectArgCount(line_, 0));
  RC_RETURN_IF_ERROR(requireLogin());
  auto controllers = chosenControllers();
  if (options_.json) {
    printJson({{"username", config_.username},
               {"user_id", config_.userId},
               {"controllers", controllers}});
    return Status::ok();
  }
  std::cout << "Logged in as " << config_.username << "\n";
  if (!config_.userId.empty()) std::cout << "User ID: " << config_.userId << "\n";
  std::cout << "Controller: " << fmt::format("{}", fmt::join(controllers, ", ")) << "\n";
  return Status::ok();
}

Status CommandRunner::runAdd() {
  RC_ASSIGN_OR_RETURN(AddPlan plan, planAdd(line_, probeLocalPath));
  for (const auto& file : plan.files) RC_RETURN_IF_ERROR(validateFileName(baseName(file)));
  RC_RETURN_IF_ERROR(requireLogin());
  ApiClient api = makeApi(true);
  json answers = json::array();
  size_t failed = 0;
  for (const auto& file : plan.files) {
    Status s = uploadOne(api, file, plan.tags, answers);
    if (s.isOk()) continue;
    if (plan.files.size() == 1 || interruptRequested() || s.code() == StatusCode::kInvalidApiKey) {
      return s;
    }
    std::cerr << "Error: " << file << ": " << errorText(s) << "\n";
    ++failed;
  }
  if (options_.json) printJson(answers.size() == 1 ? answers[0] : answers);
  if (failed == 0) return Status::ok();
  return ioError(fmt::format("{} of {} files were not uploaded", failed, plan.files.size()));
}

Status CommandRunner::uploadOne(ApiClient& api, const std::string& file,
                                const std::vector<std::string>& tags, json& answers) {
  RC_ASSIGN_OR_RETURN(json answer, uploadFile(api, file, baseName(file), tags, showProgress()));
  answers.push_back(answer);
  if (!options_.json) std::cout << formatAdded(answer) << "\n" << std::flush;
  return Status::ok();
}

Status CommandRunner::runList() {
  RC_ASSIGN_OR_RETURN(auto tags, planQuery(line_, /*required=*/false));
  RC_RETURN_IF_ERROR(requireLogin());
  ApiClient api = makeApi(true);
  RC_ASSIGN_OR_RETURN(json answer, api.call("GET", filesPath(tags)));
  if (options_.json) {
    printJson(answer);
  } else {
    std::cout << formatFileList(answer, tags);
  }
  return Status::ok();
}

Status CommandRunner::runDelete() {
  RC_ASSIGN_OR_RETURN(auto tags, planQuery(line_, /*required=*/true));
  RC_RETURN_IF_ERROR(requireLogin());
  if (interactive_ && !line_.yes && !confirm("Delete every file tagged " + joinQuery(tags) + "?")) {
    std::cout << "Cancelled.\n";
    return Status::ok();
  }
  ApiClient api = makeApi(true);
  RC_ASSIGN_OR_RETURN(json answer, api.call("DELETE", filesPath(tags)));
  if (options_.json) {
    printJson(answer);
  } else {
    std::cout << formatDeleted(answer);
  }
  return Status::ok();
}

Status CommandRunner::runTagEdit() {
  bool adding = line_.command == "add-tags";
  RC_ASSIGN_OR_RETURN(TagEditPlan plan, planTagEdit(line_));
  RC_RETURN_IF_ERROR(requireLogin());
  ApiClient api = makeApi(true);
  json body = {{"query_tags", plan.query}, {adding ? "new_tags" : "tags_to_remove", plan.tags}};
  RC_ASSIGN_OR_RETURN(json answer,
                      api.call(adding ? "POST" : "DELETE", "/api/v1/files/tags", body));
  if (options_.json) {
    printJson(answer);
  } else {
    std::cout << (adding ? formatTagsAdded(answer, plan.tags)
                         : formatTagsRemoved(answer, plan.tags));
  }
  return Status::ok();
}

Status CommandRunner::runDownload() {
  RC_ASSIGN_OR_RETURN(DownloadPlan plan, planDownload(line_));
  RC_RETURN_IF_ERROR(validateFileName(plan.name));
  RC_RETURN_IF_ERROR(requireLogin());
  RC_ASSIGN_OR_RETURN(std::string dest, resolveDownloadPath(plan.name, plan.dest));
  ApiClient api = makeApi(true);
  RC_ASSIGN_OR_RETURN(DownloadResult result, downloadFile(api, plan.name, dest, showProgress()));
  if (options_.json) {
    printJson({{"name", plan.name},
               {"path", result.path},
               {"size", result.size},
               {"sha256", result.sha256}});
  } else {
    std::cout << "Downloaded: " << plan.name << " (" << formatSize(result.size) << ")\n"
              << "Saved to: " << result.path << "\n";
  }
  return Status::ok();
}

Status CommandRunner::runTags() {
  RC_RETURN_IF_ERROR(expectArgCount(line_, 0));
  RC_RETURN_IF_ERROR(requireLogin());
  ApiClient api = makeApi(true);
  RC_ASSIGN_OR_RETURN(json answer, api.call("GET", "/api/v1/tags"));
  if (options_.json) {
    printJson(answer);
  } else {
    std::cout << formatTagCounts(answer);
  }
  return Status::ok();
}

Status CommandRunner::runStatus() {
  RC_RETURN_IF_ERROR(expectArgCount(line_, 0));
  RC_RETURN_IF_ERROR(requireLogin());
  ApiClient api = makeApi(true);
  RC_ASSIGN_OR_RETURN(json answer, api.call("GET", "/api/v1/cluster"));
  if (options_.json) {
    printJson(answer);
  } else {
    std::cout << formatCluster(answer);
  }
  return Status::ok();
}

int runCommandLine(const CommandLine& line, const GlobalOptions& session, bool interactive) {
  CommandRunner runner(line, session, interactive);
  return runner.run();
}

}  // namespace redcloud::client
