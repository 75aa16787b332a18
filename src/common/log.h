// Logging set-up: one line per event to stderr, text or JSON.
#pragma once

#include <string>

#include "common/status.h"

namespace redcloud {

// level: trace|debug|info|warn|error; format: text|json.
Status setupLogging(const std::string& level, const std::string& format);

}  // namespace redcloud
