// Human-readable output of the client's commands (formats of the original
// client, ORIGINAL.md §1.3, where API.md does not decide otherwise).
//
// Pure functions from the server's JSON answers to text; missing or
// mistyped fields print as empty rather than failing.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace redcloud::client {

// First 8 characters of an id followed by "..." (as the original client).
std::string shortId(const std::string& id);

// Columns separated by two spaces, padded to the widest cell (UTF-8 aware).
std::string renderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// "a AND b"
std::string joinQuery(const std::vector<std::string>& tags);

// One line for an upload answer: "Added: <name> (ID: <id8>, Size: <size>, Tags: a, b)".
std::string formatAdded(const nlohmann::json& upload);

// GET /files answer.
std::string formatFileList(const nlohmann::json& answer, const std::vector<std::string>& query);

// DELETE /files answer.
std::string formatDeleted(const nlohmann::json& answer);

// POST /files/tags and DELETE /files/tags answers.
std::string formatTagsAdded(const nlohmann::json& answer, const std::vector<std::string>& tags);
std::string formatTagsRemoved(const nlohmann::json& answer, const std::vector<std::string>& tags);

// GET /tags answer.
std::string formatTagCounts(const nlohmann::json& answer);

// GET /cluster answer.
std::string formatCluster(const nlohmann::json& answer);

}  // namespace redcloud::client
