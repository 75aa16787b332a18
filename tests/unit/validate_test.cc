#include "common/validate.h"

#include <gtest/gtest.h>

namespace redcloud {
namespace {

TEST(Validate, FileNames) {
  EXPECT_TRUE(validateFileName("report.pdf").isOk());
  EXPECT_TRUE(validateFileName("naïve café.txt").isOk());
  EXPECT_TRUE(validateFileName(std::string(255, 'a')).isOk());
  EXPECT_EQ(validateFileName("").code(), StatusCode::kInvalidName);
  EXPECT_EQ(validateFileName(std::string(256, 'a')).code(), StatusCode::kInvalidName);
  EXPECT_EQ(validateFileName("a/b").code(), StatusCode::kInvalidName);
  EXPECT_EQ(validateFileName(".").code(), StatusCode::kInvalidName);
  EXPECT_EQ(validateFileName("..").code(), StatusCode::kInvalidName);
  EXPECT_EQ(validateFileName("a\nb").code(), StatusCode::kInvalidName);
  EXPECT_EQ(validateFileName(std::string("a\0b", 3)).code(), StatusCode::kInvalidName);
  EXPECT_EQ(validateFileName("a\x7f").code(), StatusCode::kInvalidName);
  EXPECT_EQ(validateFileName("\xff\xfe").code(), StatusCode::kInvalidName);
  EXPECT_EQ(validateFileName("\xc0\xaf").code(), StatusCode::kInvalidName);  // overlong '/'
}

TEST(Validate, Tags) {
  EXPECT_TRUE(validateTag("finance").isOk());
  EXPECT_TRUE(validateTag("a/b").isOk());
  EXPECT_TRUE(validateTag(std::string(128, 't')).isOk());
  EXPECT_EQ(validateTag(std::string(129, 't')).code(), StatusCode::kInvalidTagQuery);
  EXPECT_EQ(validateTag("a,b").code(), StatusCode::kInvalidTagQuery);
  EXPECT_EQ(validateTag("a\tb").code(), StatusCode::kInvalidTagQuery);
  EXPECT_EQ(validateTag("").code(), StatusCode::kInvalidTagQuery);
}

TEST(Validate, NormalizeTagsTrimsDeduplicatesAndRejectsEmpty) {
  auto tags = normalizeTags({" a ", "b", "a", "", "  "}, "Query tags");
  ASSERT_TRUE(tags.isOk());
  EXPECT_EQ(*tags, (std::vector<std::string>{"a", "b"}));
  auto empty = normalizeTags({" ", ""}, "Query tags");
  ASSERT_FALSE(empty.isOk());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidTagQuery);
  EXPECT_EQ(empty.status().message(), "Query tags cannot be empty");
}

TEST(Validate, NormalizeTagsKeepsFirstOccurrenceOrderOnALargeList) {
  // 100,000 tags, each of 200 distinct ones repeated 500 times (trimmed
  // variants included): a one-pass dedup, order of first appearance.
  std::vector<std::string> raw;
  for (int round = 0; round < 500; ++round) {
    for (int i = 199; i >= 0; --i) {
      raw.push_back((round % 2 ? " t" : "t") + std::to_string(i) + (round % 3 ? "" : "  "));
    }
  }
  auto tags = normalizeTags(raw, "Tags");
  ASSERT_TRUE(tags.isOk());
  ASSERT_EQ(tags->size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ((*tags)[i], "t" + std::to_string(199 - i));
  // One bad tag anywhere still fails the whole list.
  raw.push_back("bad,tag");
  EXPECT_EQ(normalizeTags(raw, "Tags").status().code(), StatusCode::kInvalidTagQuery);
}

TEST(Validate, SplitCommaList) {
  EXPECT_EQ(splitCommaList(" a, b,,c ,"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(splitCommaList("").empty());
  EXPECT_TRUE(splitCommaList(" , ").empty());
}

TEST(Validate, Usernames) {
  EXPECT_TRUE(validateUsername("alice.b_c-9").isOk());
  EXPECT_FALSE(validateUsername("").isOk());
  EXPECT_FALSE(validateUsername("al ice").isOk());
  EXPECT_FALSE(validateUsername(std::string(65, 'a')).isOk());
  EXPECT_FALSE(validateUsername("ünï").isOk());
}

}  // namespace
}  // namespace redcloud

namespace redcloud {
namespace {

TEST(Validate, NormalizeTagsLimitsDistinctTagsPerRequest) {
  std::vector<std::string> tags;
  for (size_t i = 0; i < kMaxTagsPerRequest; ++i) tags.push_back("t" + std::to_string(i));
  for (int i = 0; i < 1000; ++i) tags.push_back("t0");  // duplicates count once
  auto ok = normalizeTags(tags, "Tag list");
  ASSERT_TRUE(ok.isOk()) << ok.status().message();
  EXPECT_EQ(ok->size(), kMaxTagsPerRequest);
  tags.push_back("one-more");
  auto tooMany = normalizeTags(tags, "Tag list");
  ASSERT_FALSE(tooMany.isOk());
  EXPECT_EQ(tooMany.status().code(), StatusCode::kInvalidTagQuery);
  EXPECT_NE(tooMany.status().message().find("257 distinct tags"), std::string::npos);
}

}  // namespace
}  // namespace redcloud
