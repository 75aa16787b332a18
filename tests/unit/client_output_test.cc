#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "client/api_client.h"
#include "client/output.h"
#include "client/progress.h"
#include "client/shell.h"
#include "client/transfer.h"

namespace redcloud::client {
namespace {

using nlohmann::json;

TEST(ClientProgress, SizesUseBinaryUnitsWithTwoDecimals) {
  EXPECT_EQ(formatSize(0), "0 B");
  EXPECT_EQ(formatSize(1023), "1023 B");
  EXPECT_EQ(formatSize(1024), "1.00 KiB");
  EXPECT_EQ(formatSize(1536), "1.50 KiB");
  EXPECT_EQ(formatSize(3ull << 20), "3.00 MiB");
  EXPECT_EQ(formatSize(5ull << 40), "5.00 TiB");
}

TEST(ClientProgress, Eta) {
  EXPECT_EQ(formatEta(-1), "--:--");
  EXPECT_EQ(formatEta(42), "00:42");
  EXPECT_EQ(formatEta(725), "12:05");
  EXPECT_EQ(formatEta(3723), "1:02:03");
}

TEST(ClientProgress, LineShowsBytesRateAndEta) {
  std::string line = formatProgressLine("big.iso", 50ull << 20, 100ull << 20, 5.0, 120);
  EXPECT_NE(line.find("big.iso"), std::string::npos);
  EXPECT_NE(line.find("50.00 MiB / 100.00 MiB"), std::string::npos);
  EXPECT_NE(line.find(" 50%"), std::string::npos);
  EXPECT_NE(line.find("10.00 MiB/s"), std::string::npos);
  EXPECT_NE(line.find("ETA 00:05"), std::string::npos);
  EXPECT_NE(line.find("[###"), std::string::npos);
  EXPECT_LE(line.size(), 120u);
}

TEST(ClientProgress, NarrowTerminalDropsBarAndCutsLabel) {
  std::string label(100, 'x');
  std::string line = formatProgressLine(label, 1, 2, 0.0, 60);
  EXPECT_LE(line.size(), 60u);
  EXPECT_NE(line.find("ETA --:--"), std::string::npos);
}

TEST(ClientProgress, DisabledBarIsSilent) {
  ManualClock clock;
  testing::internal::CaptureStderr();
  {
    ProgressBar bar("f", 100, /*enabled=*/false, clock);
    bar.update(50);
    bar.finish();
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(ClientProgress, EnabledBarRedrawsAtMostTenTimesASecond) {
  ManualClock clock;
  testing::internal::CaptureStderr();
  {
    ProgressBar bar("f", 100, /*enabled=*/true, clock);
    bar.update(10);
    bar.update(20);  // same instant: not redrawn
    clock.advance(150);
    bar.update(30);
    bar.finish();
  }
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\r'), 3);
  EXPECT_EQ(err.back(), '\n');
}

TEST(ClientOutput, ShortIdAndQuery) {
  EXPECT_EQ(shortId("0123456789abcdef"), "01234567...");
  EXPECT_EQ(joinQuery({"a", "b"}), "a AND b");
}

TEST(ClientOutput, AddedLine) {
  json up = {{"file_id", "abcdef0123"}, {"name", "r.pdf"}, {"size", 1536},
             {"tags", {"a", "b"}},      {"sha256", "x"},   {"replaced_file_id", nullptr}};
  EXPECT_EQ(formatAdded(up), "Added: r.pdf (ID: abcdef01..., Size: 1.50 KiB, Tags: a, b)");
  up["replaced_file_id"] = "99999999aaaa";
  EXPECT_EQ(formatAdded(up),
            "Added: r.pdf (ID: abcdef01..., Size: 1.50 KiB, Tags: a, b, Replaced: 99999999...)");
}

TEST(ClientOutput, FileList) {
  json empty = {{"files", json::array()}, {"next_cursor", nullptr}};
  EXPECT_EQ(formatFileList(empty, {"a", "b"}), "No files found matching query: a AND b\n");
  EXPECT_EQ(formatFileList(empty, {}), "No files found.\n");
  json one = {{"files",
               {{{"file_id", "1234567890"},
                 {"name", "n.txt"},
                 {"size", 10},
                 {"tags", {"x"}},
                 {"created_at", "2026-01-01T00:00:00Z"}}}}};
  EXPECT_EQ(formatFileList(one, {"x"}),
            "Found 1 file(s):\n  - n.txt (ID: 12345678...)\n    Size: 10 B\n    Tags: x\n"
            "    Created: 2026-01-01T00:00:00Z\n");
}

TEST(ClientOutput, DeleteAndTagEdits) {
  EXPECT_EQ(formatDeleted({{"deleted_count", 0}, {"file_ids", json::array()}}),
            "No files deleted. No files matched the query.\n");
  EXPECT_EQ(formatDeleted({{"deleted_count", 2}, {"file_ids", {"aaaaaaaaa1", "bbbbbbbbb2"}}}),
            "Deleted 2 file(s).\nFile IDs: aaaaaaaa..., bbbbbbbb...\n");
  EXPECT_EQ(formatTagsAdded({{"updated_count", 1}, {"file_ids", {"cccccccccc"}}}, {"x", "y"}),
            "Added tags [x, y] to 1 file(s).\nFile IDs: cccccccc...\n");
  json removed = {
      {"updated_count", 0},
      {"file_ids", json::array()},
      {"skipped_files", {{{"file_id", "dddddddddd"}, {"name", "f"}, {"current_tags", {"x"}}}}}};
  EXPECT_EQ(formatTagsRemoved(removed, {"x"}),
            "Skipped files (would become tagless):\n  - f (ID: dddddddd...)\n"
            "    Current tags: x\n");
}

TEST(ClientOutput, TagsTableAligns) {
  json tags = {{"tags", {{{"tag", "work"}, {"count", 3}}, {{"tag", "a"}, {"count", 12}}}}};
  EXPECT_EQ(formatTagCounts(tags), "TAG   FILES\nwork  3\na     12\n");
  EXPECT_EQ(formatTagCounts({{"tags", json::array()}}), "No tags.\n");
}

TEST(ClientOutput, ClusterTables) {
  json c = {{"self", {{"node_id", "ctl-1"}, {"address", "127.0.0.1:8000"}}},
            {"controllers", json::array()},
            {"chunkservers",
             {{{"node_id", "cs-1"},
               {"address", "127.0.0.1:50051"},
               {"state", "healthy"},
               {"capacity_bytes", 2048},
               {"used_bytes", 1024},
               {"chunk_count", 7}}}},
            {"chunks", {{"total", 7}, {"under_replicated", 0}}},
            {"metadata_digest", "abc"}};
  std::string out = formatCluster(c);
  EXPECT_NE(out.find("Controller: ctl-1 at 127.0.0.1:8000"), std::string::npos);
  EXPECT_NE(out.find("(no peers)"), std::string::npos);
  EXPECT_NE(out.find("cs-1     127.0.0.1:50051  healthy  1.00 KiB  2.00 KiB  50.0%  7"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("Chunks: 7 total, 0 under-replicated"), std::string::npos);
  EXPECT_NE(out.find("Metadata digest: abc"), std::string::npos);
}

TEST(ClientOutput, ClusterShowsChunkHealthAndRepair) {
  json c = {{"self", {{"node_id", "ctl-1"}, {"address", "127.0.0.1:8000"}}},
            {"controllers", json::array()},
            {"chunkservers",
             {{{"node_id", "cs-1"},
               {"address", "10.0.0.8:50051"},
               {"state", "healthy"},
               {"chunk_count", 9},
               {"holdings_known", false},
               {"corrupt_chunks", 2},
               {"chunks_copied_in", 5}}}},
            {"chunks",
             {{"total", 9},
              {"under_replicated", 3},
              {"unavailable", 1},
              {"corrupt", 2},
              {"repair_queue", 4},
              {"repair_rate", 2.5},
              {"copies_done", 11},
              {"copy_failures", 1}}},
            {"metadata_digest", "abc"}};
  std::string out = formatCluster(c);
  EXPECT_NE(out.find("CORRUPT  COPIED IN"), std::string::npos) << out;
  EXPECT_NE(out.find("9 (listing)  2        5"), std::string::npos) << out;
  EXPECT_NE(out.find("Chunks: 9 total, 3 under-replicated, 1 on no healthy chunkserver, 2 corrupt "
                     "copies found"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("Repair: 4 copies queued, 2.5 copies/s, 11 done, 1 failed"), std::string::npos)
      << out;
}

TEST(ClientOutput, PeerSuppliedStringsNeverReachTheTerminalRaw) {
  // A node id or address with an escape sequence, a newline or a C1 control
  // (as a hostile chunkserver could report through a controller).
  json c = {{"self", {{"node_id", "ctl\x1b[2J"}, {"address", "a\nb"}}},
            {"controllers", {{{"node_id", "peer\u009b31m"}, {"address", "x"}, {"state", "alive"}}}},
            {"chunkservers",
             {{{"node_id", "cs\x07"}, {"address", "\x1b]0;pwned\x07"}, {"state", "healthy"}}}},
            {"chunks", {{"total", 0}}},
            {"metadata_digest", "d\r"}};
  std::string out = formatCluster(c);
  for (char ch : out) {
    auto u = static_cast<unsigned char>(ch);
    EXPECT_TRUE(u >= 0x20 || u == '\n') << "raw control byte " << int(u) << " in:\n" << out;
  }
  EXPECT_EQ(out.find("\xc2\x9b"), std::string::npos) << "raw C1 control in output";
  EXPECT_NE(out.find("ctl\\x1b[2J"), std::string::npos) << out;
  EXPECT_NE(out.find("a\\x0ab"), std::string::npos) << out;
  EXPECT_NE(out.find("peer\\u009b31m"), std::string::npos) << out;
  EXPECT_NE(out.find("cs\\x07"), std::string::npos) << out;
}

TEST(ClientApi, PercentEncoding) {
  EXPECT_EQ(percentEncode("a b/c%d"), "a%20b%2Fc%25d");
  EXPECT_EQ(percentEncode("naïve.txt"), "na%C3%AFve.txt");
  EXPECT_EQ(percentEncode(".."), "%2E%2E");
  EXPECT_EQ(percentEncode("."), "%2E");
  EXPECT_EQ(percentEncode("..."), "...");
  EXPECT_EQ(tagsQuery({"a b", "c&d"}), "a%20b,c%26d");
}

TEST(ClientApi, ErrorStatusFromServerJson) {
  ApiResponse r;
  r.status = 404;
  r.body = R"({"detail":"file not found","code":"FILE_NOT_FOUND"})";
  Status s = statusFromResponse(r);
  EXPECT_EQ(s.code(), StatusCode::kFileNotFound);
  EXPECT_EQ(s.message(), "file not found");
  r.status = 400;
  r.body = R"({"detail":"bad","code":"INVALID_REQUEST"})";
  EXPECT_NE(statusFromResponse(r).code(), StatusCode::kInvalidRequest);  // never a usage error
  r.status = 502;
  r.body = "Bad Gateway\nmore";
  EXPECT_EQ(statusFromResponse(r).message(), "HTTP 502: Bad Gateway");
}

TEST(ClientTransfer, EtagAndBaseName) {
  std::string hex(64, 'a');
  EXPECT_EQ(sha256FromEtag("\"" + hex + "\""), hex);
  EXPECT_EQ(sha256FromEtag("W/\"" + hex + "\""), hex);
  EXPECT_EQ(sha256FromEtag("\"short\""), "");
  EXPECT_EQ(baseName("a/b/c.txt"), "c.txt");
  EXPECT_EQ(baseName("c.txt"), "c.txt");
  EXPECT_EQ(baseName("dir/"), "dir");
}

CompletionSource fakeSource() {
  return {[] {
            return std::vector<std::string>{"work", "urgent", "2024"};
          },
          [](const std::string& p) {
            std::vector<std::string> all = {"report.pdf", "reports/", "notes.txt"};
            std::vector<std::string> out;
            for (auto& a : all) {
              if (a.rfind(p, 0) == 0) out.push_back(a);
            }
            return out;
          }};
}

TEST(ClientShell, CompletesCommandsTagsAndPaths) {
  auto src = fakeSource();
  EXPECT_EQ(completeLine("de", src), (std::vector<std::string>{"delete", "delete-tags"}));
  EXPECT_EQ(completeLine("list w", src), std::vector<std::string>{"work"});
  EXPECT_EQ(completeLine("add rep", src), (std::vector<std::string>{"report.pdf", "reports/"}));
  EXPECT_EQ(completeLine("add notes.txt u", src), std::vector<std::string>{"urgent"});
  EXPECT_EQ(completeLine("help st", src), std::vector<std::string>{"status"});
  EXPECT_EQ(completeLine("list --js", src), std::vector<std::string>{"--json"});
  EXPECT_EQ(completeLine("add f -t 2", src), std::vector<std::string>{"2024"});
  EXPECT_TRUE(completeLine("add 'open", src).empty());
}

TEST(ClientShell, HistoryDropsPasswords) {
  EXPECT_EQ(historyEntry("login alice s3cret-pass"), "login alice");
  EXPECT_EQ(historyEntry("register 'bob x' pw123456"), "register bob\\ x");
  EXPECT_EQ(historyEntry("login alice"), "login alice");
  EXPECT_EQ(historyEntry("list a b"), "list a b");
}

TEST(ClientShell, EscapesWords) {
  EXPECT_EQ(escapeShellWord("my file's \"x\""), "my\\ file\\'s\\ \\\"x\\\"");
}

}  // namespace
}  // namespace redcloud::client
