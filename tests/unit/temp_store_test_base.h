// A test fixture base: a fresh folder per test (removed afterwards) and real
// MetadataStores opened in it; rec() builds the records they are fed.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "controller/metadata/metadata_store.h"

namespace redcloud::controller {

// A record as the metadata tests write them (the value "{}" when deleted).
inline Record rec(RecordKind kind, std::string key, std::string value, const std::string& clock,
                  int64_t ts, std::string origin = "n1", bool deleted = false) {
  Record r;
  r.kind = kind;
  r.key = std::move(key);
  r.value = deleted ? "{}" : std::move(value);
  r.deleted = deleted;
  r.version.clock = *VectorClock::decode(clock);
  r.version.timestamp = ts;
  r.version.origin = std::move(origin);
  return r;
}

class TempStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("rc-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name() + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<MetadataStore> openStore(const std::string& name) {
    auto s = std::make_unique<MetadataStore>();
    EXPECT_TRUE(s->open((dir_ / name).string()).isOk());
    return s;
  }

  std::filesystem::path dir_;
};

}  // namespace redcloud::controller
