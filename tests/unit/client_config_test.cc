#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "client/config.h"
#include "client/controllers.h"

namespace redcloud::client {
namespace {

namespace fs = std::filesystem;

// A temporary folder removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "rc-client-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

mode_t modeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

ClientConfig sample() {
  ClientConfig c;
  c.username = "alice";
  c.userId = "u-1";
  c.apiKey = "key-123";
  c.controllers = {"http://10.0.0.1:8000", "http://10.0.0.2:8000"};
  return c;
}

TEST(ClientConfig, SaveCreatesPrivateFolderAndFile) {
  TempDir dir;
  std::string path = dir.path() + "/nested/redcloud/config.json";
  ASSERT_TRUE(saveConfig(path, sample()).isOk());
  EXPECT_EQ(modeOf(path), 0600u);
  EXPECT_EQ(modeOf(dir.path() + "/nested/redcloud"), 0700u);
  std::string warning;
  auto loaded = loadConfig(path, &warning);
  ASSERT_TRUE(loaded.isOk());
  EXPECT_TRUE(warning.empty());
  EXPECT_EQ(loaded->username, "alice");
  EXPECT_EQ(loaded->userId, "u-1");
  EXPECT_EQ(loaded->apiKey, "key-123");
  EXPECT_EQ(loaded->controllers, sample().controllers);
}

TEST(ClientConfig, OverwriteKeepsModeAndLeavesNoTemporaryFiles) {
  TempDir dir;
  std::string path = dir.path() + "/config.json";
  { std::ofstream(path) << "{}"; }
  ::chmod(path.c_str(), 0644);
  ASSERT_TRUE(saveConfig(path, sample()).isOk());
  EXPECT_EQ(modeOf(path), 0600u);
  int entries = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST(ClientConfig, MissingFileIsEmpty) {
  TempDir dir;
  auto loaded = loadConfig(dir.path() + "/none.json", nullptr);
  ASSERT_TRUE(loaded.isOk());
  EXPECT_FALSE(loaded->loggedIn());
}

TEST(ClientConfig, CorruptFileIsMovedAsideWithAWarning) {
  TempDir dir;
  std::string path = dir.path() + "/config.json";
  { std::ofstream(path) << "{not json"; }
  std::string warning;
  auto loaded = loadConfig(path, &warning);
  ASSERT_TRUE(loaded.isOk());
  EXPECT_FALSE(loaded->loggedIn());
  EXPECT_NE(warning.find("corrupt"), std::string::npos);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(fs::exists(path + ".bak"));
}

TEST(ClientConfig, WrongTypesCountAsCorrupt) {
  EXPECT_FALSE(configFromJson(R"({"api_key": 5})").has_value());
  EXPECT_FALSE(configFromJson(R"({"controllers": "x"})").has_value());
  EXPECT_FALSE(configFromJson(R"([1,2])").has_value());
  auto ok = configFromJson(R"({"api_key": null, "extra": 1})");
  ASSERT_TRUE(ok.has_value());
  EXPECT_FALSE(ok->loggedIn());
}

TEST(ClientConfig, DefaultPathFollowsXdg) {
  const char* old = std::getenv("XDG_CONFIG_HOME");
  std::string saved = old ? old : "";
  ::setenv("XDG_CONFIG_HOME", "/tmp/xdg-test", 1);
  EXPECT_EQ(defaultConfigPath(), "/tmp/xdg-test/redcloud/config.json");
  EXPECT_EQ(resolveConfigPath(std::string("/x/c.json")), "/x/c.json");
  EXPECT_EQ(configFolder("/x/c.json"), "/x");
  if (old)
    ::setenv("XDG_CONFIG_HOME", saved.c_str(), 1);
  else
    ::unsetenv("XDG_CONFIG_HOME");
}

std::vector<std::string> fakeResolve(const std::string& host) {
  if (host == "controller") return {"10.0.0.1", "10.0.0.2"};
  if (host == "v6host") return {"fd00::1"};
  return {};
}

TEST(ControllerUrls, Normalization) {
  EXPECT_EQ(normalizeControllerUrl("host:9000"), "http://host:9000");
  EXPECT_EQ(normalizeControllerUrl("host"), "http://host:8000");
  EXPECT_EQ(normalizeControllerUrl(" http://1.2.3.4:80/ "), "http://1.2.3.4:80");
  EXPECT_EQ(normalizeControllerUrl("[::1]:9000"), "http://[::1]:9000");
  EXPECT_EQ(normalizeControllerUrl("https://example.com"), "https://example.com");
  EXPECT_EQ(normalizeControllerUrl(""), "");
}

TEST(ControllerUrls, PrecedenceFlagEnvDfsConfigDefault) {
  ControllerSources s;
  s.fromConfig = {"http://cfg:1"};
  s.dfsHost = "dfs";
  s.env = "env:2,env2:3";
  s.flag = "flag:4";
  EXPECT_EQ(chooseControllerUrls(s, fakeResolve), std::vector<std::string>{"http://flag:4"});
  s.flag.reset();
  EXPECT_EQ(chooseControllerUrls(s, fakeResolve),
            (std::vector<std::string>{"http://env:2", "http://env2:3"}));
  s.env.reset();
  EXPECT_EQ(chooseControllerUrls(s, fakeResolve), std::vector<std::string>{"http://dfs:8000"});
  s.dfsHost.reset();
  EXPECT_EQ(chooseControllerUrls(s, fakeResolve), std::vector<std::string>{"http://cfg:1"});
  s.fromConfig.clear();
  EXPECT_EQ(chooseControllerUrls(s, fakeResolve),
            std::vector<std::string>{"http://controller:8000"});
  auto none = [](const std::string&) { return std::vector<std::string>{}; };
  EXPECT_EQ(chooseControllerUrls(s, none), std::vector<std::string>{"http://127.0.0.1:8000"});
}

TEST(ControllerUrls, DfsPortAlone) {
  ControllerSources s;
  s.dfsPort = "9001";
  EXPECT_EQ(chooseControllerUrls(s, fakeResolve),
            std::vector<std::string>{"http://controller:9001"});
}

TEST(ControllerUrls, ExpandsNamesToEveryAddress) {
  auto out = expandControllerUrls(
      {"http://controller:8000", "http://10.0.0.1:8000", "http://v6host:1", "http://unknown:2"},
      fakeResolve);
  EXPECT_EQ(out, (std::vector<std::string>{"http://10.0.0.1:8000", "http://10.0.0.2:8000",
                                           "http://[fd00::1]:1", "http://unknown:2"}));
}

}  // namespace
}  // namespace redcloud::client
