#include <gtest/gtest.h>

#include <map>

#include "client/command_line.h"

namespace redcloud::client {
namespace {

using Words = std::vector<std::string>;

CommandLine parse(const Words& words) {
  auto r = parseCommandLine(words);
  EXPECT_TRUE(r.isOk()) << r.status().message();
  return r.isOk() ? *r : CommandLine{};
}

// A fake file system: the listed paths exist with the given kinds.
FileProbe fakeFiles(std::map<std::string, PathKind> files) {
  return [files](const std::string& p) {
    auto it = files.find(p);
    return it == files.end() ? PathKind::kMissing : it->second;
  };
}

TEST(ShellWords, SplitsOnWhitespaceAndHonoursQuotes) {
  auto r = splitShellWords("  add 'my file.txt' \"a \\\"b\\\"\" c\\ d  ");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, (Words{"add", "my file.txt", "a \"b\"", "c d"}));
}

TEST(ShellWords, EmptyQuotesMakeAnEmptyWord) {
  auto r = splitShellWords("list ''");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, (Words{"list", ""}));
}

TEST(ShellWords, UnbalancedQuoteIsAUsageError) {
  auto r = splitShellWords("add 'oops");
  ASSERT_FALSE(r.isOk());
  EXPECT_TRUE(isUsageError(r.status()));
  EXPECT_NE(r.status().message().find("No closing quotation"), std::string::npos);
}

TEST(CommandLine, GlobalOptionsBeforeOrAfterTheCommand) {
  CommandLine a = parse({"--json", "--controller", "http://x:1", "list", "t"});
  CommandLine b = parse({"list", "t", "--json", "--controller=http://x:1"});
  for (const auto& cl : {a, b}) {
    EXPECT_EQ(cl.command, "list");
    EXPECT_EQ(cl.args, Words{"t"});
    EXPECT_TRUE(cl.global.json);
    EXPECT_EQ(cl.global.controller.value_or(""), "http://x:1");
  }
}

TEST(CommandLine, FlagsAndGroupedShortFlags) {
  CommandLine cl = parse({"delete", "-qy", "a", "--config", "/tmp/c.json", "--password-stdin"});
  EXPECT_TRUE(cl.global.quiet);
  EXPECT_TRUE(cl.yes);
  EXPECT_TRUE(cl.passwordStdin);
  EXPECT_EQ(cl.global.configPath.value_or(""), "/tmp/c.json");
  EXPECT_EQ(cl.args, Words{"a"});
}

TEST(CommandLine, UnknownOptionAndMissingValueAreUsageErrors) {
  auto r = parseCommandLine({"list", "--frobnicate"});
  ASSERT_FALSE(r.isOk());
  EXPECT_TRUE(isUsageError(r.status()));
  auto m = parseCommandLine({"add", "f", "-t"});
  ASSERT_FALSE(m.isOk());
  EXPECT_TRUE(isUsageError(m.status()));
}

TEST(CommandLine, DoubleDashEndsOptionsAndRecordsTheSplit) {
  CommandLine cl = parse({"add-tags", "a", "b", "--", "-x", "--json"});
  EXPECT_EQ(cl.args, (Words{"a", "b", "-x", "--json"}));
  ASSERT_TRUE(cl.separator.has_value());
  EXPECT_EQ(*cl.separator, 2u);
  EXPECT_FALSE(cl.global.json);
}

TEST(CommandLine, RepeatedTagOptions) {
  CommandLine cl = parse({"add", "f.txt", "-t", "a", "--tags", "b, c", "--tags=d"});
  EXPECT_TRUE(cl.tagsOptionGiven);
  EXPECT_EQ(cl.optionTags, (Words{"a", "b", "c", "d"}));
}

TEST(PlanAdd, LeadingExistingFilesThenTags) {
  auto probe = fakeFiles({{"a.txt", PathKind::kFile}, {"b.zip", PathKind::kFile}});
  auto plan = planAdd(parse({"add", "a.txt", "b.zip", "work", "x,y"}), probe);
  ASSERT_TRUE(plan.isOk()) << plan.status().message();
  EXPECT_EQ(plan->files, (Words{"a.txt", "b.zip"}));
  EXPECT_EQ(plan->tags, (Words{"work", "x", "y"}));
}

TEST(PlanAdd, ALaterExistingFileNameIsATag) {
  auto probe = fakeFiles({{"a.txt", PathKind::kFile}, {"b.txt", PathKind::kFile}});
  auto plan = planAdd(parse({"add", "a.txt", "tag", "b.txt"}), probe);
  ASSERT_TRUE(plan.isOk());
  EXPECT_EQ(plan->files, Words{"a.txt"});
  EXPECT_EQ(plan->tags, (Words{"tag", "b.txt"}));
}

TEST(PlanAdd, SlashInANonFileArgumentIsAnErrorNotATag) {
  auto probe = fakeFiles({{"a.txt", PathKind::kFile}});
  auto plan = planAdd(parse({"add", "a.txt", "dir/missing.txt", "tag"}), probe);
  ASSERT_FALSE(plan.isOk());
  EXPECT_FALSE(isUsageError(plan.status()));
  EXPECT_NE(plan.status().message().find("dir/missing.txt"), std::string::npos);
}

TEST(PlanAdd, DirectoryAsFileIsAnError) {
  auto probe = fakeFiles({{"docs", PathKind::kDirectory}});
  auto plan = planAdd(parse({"add", "docs", "tag"}), probe);
  ASSERT_FALSE(plan.isOk());
  EXPECT_FALSE(isUsageError(plan.status()));
  auto withT = planAdd(parse({"add", "docs", "-t", "tag"}), probe);
  ASSERT_FALSE(withT.isOk());
  EXPECT_FALSE(isUsageError(withT.status()));
}

TEST(PlanAdd, MissingFirstFileIsAFailureNotAUsageError) {
  auto plan = planAdd(parse({"add", "nope.txt", "tag"}), fakeFiles({}));
  ASSERT_FALSE(plan.isOk());
  EXPECT_FALSE(isUsageError(plan.status()));
  EXPECT_NE(plan.status().message().find("File not found: nope.txt"), std::string::npos);
}

TEST(PlanAdd, TooFewArgumentsOrNoTagsAreUsageErrors) {
  auto probe = fakeFiles({{"a.txt", PathKind::kFile}, {"b.txt", PathKind::kFile}});
  for (const Words& w : {Words{"add"}, Words{"add", "a.txt"}, Words{"add", "a.txt", "b.txt"},
                         Words{"add", "a.txt", ","}, Words{"add", "a.txt", "-t", " "}}) {
    auto plan = planAdd(parse(w), probe);
    ASSERT_FALSE(plan.isOk()) << w.size();
    EXPECT_TRUE(isUsageError(plan.status())) << plan.status().message();
  }
}

TEST(PlanAdd, WithTagOptionEveryArgumentIsAFile) {
  auto probe = fakeFiles({{"a.txt", PathKind::kFile}, {"work", PathKind::kFile}});
  auto plan = planAdd(parse({"add", "a.txt", "work", "-t", "x", "-t", "y/z"}), probe);
  ASSERT_TRUE(plan.isOk());
  EXPECT_EQ(plan->files, (Words{"a.txt", "work"}));
  EXPECT_EQ(plan->tags, (Words{"x", "y/z"}));
}

TEST(PlanAdd, TagMayStartWithDashAfterDoubleDash) {
  auto probe = fakeFiles({{"a.txt", PathKind::kFile}});
  auto plan = planAdd(parse({"add", "a.txt", "--", "-draft"}), probe);
  ASSERT_TRUE(plan.isOk());
  EXPECT_EQ(plan->tags, Words{"-draft"});
}

TEST(PlanAdd, TagOptionWithCommaIsRejected) {
  auto probe = fakeFiles({{"a.txt", PathKind::kFile}});
  auto plan = planAdd(parse({"add", "a.txt", "-t", "a,b"}), probe);
  ASSERT_FALSE(plan.isOk());
  EXPECT_EQ(plan.status().code(), StatusCode::kInvalidTagQuery);
}

TEST(PlanTagEdit, SeparatorSplitsQueryFromTags) {
  auto plan = planTagEdit(parse({"add-tags", "a", "b", "--", "c", "d"}));
  ASSERT_TRUE(plan.isOk());
  EXPECT_EQ(plan->query, (Words{"a", "b"}));
  EXPECT_EQ(plan->tags, (Words{"c", "d"}));
}

TEST(PlanTagEdit, WithoutSeparatorTheLastWordIsTheTag) {
  auto plan = planTagEdit(parse({"delete-tags", "a", "b", "c"}));
  ASSERT_TRUE(plan.isOk());
  EXPECT_EQ(plan->query, (Words{"a", "b"}));
  EXPECT_EQ(plan->tags, Words{"c"});
}

TEST(PlanTagEdit, LeadingDoubleDashLetsQueryTagsStartWithDash) {
  auto plan = planTagEdit(parse({"add-tags", "--", "-q", "--", "-new"}));
  ASSERT_TRUE(plan.isOk());
  EXPECT_EQ(plan->query, Words{"-q"});
  EXPECT_EQ(plan->tags, Words{"-new"});
}

TEST(PlanTagEdit, TagOptionGivesTheTags) {
  auto plan = planTagEdit(parse({"add-tags", "a", "b", "-t", "c"}));
  ASSERT_TRUE(plan.isOk());
  EXPECT_EQ(plan->query, (Words{"a", "b"}));
  EXPECT_EQ(plan->tags, Words{"c"});
}

TEST(PlanTagEdit, EmptySidesAreUsageErrors) {
  for (const Words& w : {Words{"add-tags", "a"}, Words{"add-tags", "--", "x"},
                         Words{"delete-tags", "a", "--"}, Words{"delete-tags"}}) {
    // A `--` before any word only ends options, so "add-tags -- x" has one word.
    auto plan = planTagEdit(parse(w));
    ASSERT_FALSE(plan.isOk()) << w.size();
    EXPECT_TRUE(isUsageError(plan.status()));
  }
  auto r = planTagEdit(parse({"add-tags", "a"}));
  EXPECT_EQ(r.status().message(), "add-tags requires tag-query and at least one new tag");
}

TEST(PlanQuery, ListMayBeEmptyDeleteMayNot) {
  auto list = planQuery(parse({"list"}), false);
  ASSERT_TRUE(list.isOk());
  EXPECT_TRUE(list->empty());
  auto del = planQuery(parse({"delete"}), true);
  ASSERT_FALSE(del.isOk());
  EXPECT_TRUE(isUsageError(del.status()));
  auto dup = planQuery(parse({"list", "a", "a,b", " b "}), false);
  ASSERT_TRUE(dup.isOk());
  EXPECT_EQ(*dup, (Words{"a", "b"}));
}

TEST(PlanQuery, YesIsOnlyForDelete) {
  EXPECT_TRUE(planQuery(parse({"delete", "a", "-y"}), true).isOk());
  auto r = planQuery(parse({"list", "-y"}), false);
  ASSERT_FALSE(r.isOk());
  EXPECT_TRUE(isUsageError(r.status()));
}

TEST(PlanCredentials, PasswordOptionalButNotTwice) {
  auto one = planCredentials(parse({"login", "alice"}));
  ASSERT_TRUE(one.isOk());
  EXPECT_FALSE(one->password.has_value());
  auto two = planCredentials(parse({"login", "alice", "secret123"}));
  ASSERT_TRUE(two.isOk());
  EXPECT_EQ(two->password.value_or(""), "secret123");
  EXPECT_FALSE(planCredentials(parse({"login", "a", "b", "--password-stdin"})).isOk());
  EXPECT_FALSE(planCredentials(parse({"register"})).isOk());
  EXPECT_FALSE(planCredentials(parse({"register", "a", "b", "c"})).isOk());
}

TEST(PlanDownload, NameAndOptionalDestination) {
  auto a = planDownload(parse({"download", "f.txt"}));
  ASSERT_TRUE(a.isOk());
  EXPECT_FALSE(a->dest.has_value());
  auto b = planDownload(parse({"download", "f.txt", "out/"}));
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->dest.value_or(""), "out/");
  auto c = planDownload(parse({"download", "a", "b", "c"}));
  ASSERT_FALSE(c.isOk());
  EXPECT_TRUE(isUsageError(c.status()));
}

TEST(GlobalOptions, LineOptionsWinOverSession) {
  GlobalOptions session;
  session.controller = "http://a:1";
  session.quiet = true;
  GlobalOptions line;
  line.controller = "http://b:2";
  line.json = true;
  GlobalOptions m = session.mergedWith(line);
  EXPECT_EQ(m.controller.value_or(""), "http://b:2");
  EXPECT_TRUE(m.json);
  EXPECT_TRUE(m.quiet);
}

}  // namespace
}  // namespace redcloud::client
