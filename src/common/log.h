// Logging set-up: one line per event to stderr, text or JSON.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace redcloud {

// level: trace|debug|info|warn|error; format: text|json.
// Every message is written through escapeLogMessage().
Status setupLogging(const std::string& level, const std::string& format);

// A log message made safe to print: control characters (newlines, escape
// sequences, C1 controls) and bytes that are not UTF-8 become \xNN / \u00NN
// escapes; with `json`, also quotes and backslashes, so the line stays valid
// JSON whatever a peer sent.
std::string escapeLogMessage(std::string_view message, bool json);

}  // namespace redcloud
