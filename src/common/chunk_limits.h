// Chunk sizes every role agrees on (DESIGN.md "Chunks").
#pragma once

#include <cstddef>
#include <cstdint>

namespace redcloud {

// Files are cut into chunks of this size (the last one may be shorter).
constexpr uint64_t kMaxChunkSize = 4 * 1024 * 1024;
// Streamed chunk RPCs carry the bytes in pieces of this size.
constexpr size_t kPieceSize = 1024 * 1024;

}  // namespace redcloud
