// Chunk sizes every role agrees on (DESIGN.md "Chunks").
#pragma once

#include <cstddef>
#include <cstdint>

namespace redcloud {

// Files are cut into chunks of this size (the last one may be shorter).
constexpr uint64_t kMaxChunkSize = 4 * 1024 * 1024;
// Streamed chunk RPCs carry the bytes in pieces of this size. gRPC copies a
// message several times on its way (slices, HTTP/2 frames): 1 MiB pieces
// took twice the CPU of 64 KiB ones (a 1 GiB upload to one chunkserver on
// 127.0.0.1: 104 MB/s with 1 MiB, 165 with 64 KiB; downloads 154 → 186).
constexpr size_t kPieceSize = 64 * 1024;

}  // namespace redcloud
