#include "controller/metrics.h"

#include <fmt/format.h>

namespace redcloud::controller {

void Metrics::observeRequest(const std::string& method, const std::string& route, int status,
                             double seconds) {
  std::lock_guard lock(mu_);
  auto& r = routes_[{method, route}];
  ++r.count;
  r.sum += seconds;
  for (size_t i = 0; i < kNumBuckets; ++i) {
    if (seconds <= kBuckets[i]) ++r.buckets[i];
  }
  ++r.byStatus[status];
}

std::string Metrics::render(const std::string& gauges) const {
  std::string out;
  out += "# HELP redcloud_http_requests_total HTTP requests by route and status.\n";
  out += "# TYPE redcloud_http_requests_total counter\n";
  std::lock_guard lock(mu_);
  for (const auto& [key, r] : routes_) {
    for (const auto& [status, n] : r.byStatus) {
      out += fmt::format(
          "redcloud_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{}\"}} {}\n",
          key.first, key.second, status, n);
    }
  }
  out += "# HELP redcloud_http_request_duration_seconds HTTP request latency.\n";
  out += "# TYPE redcloud_http_request_duration_seconds histogram\n";
  for (const auto& [key, r] : routes_) {
    std::string labels = fmt::format("method=\"{}\",route=\"{}\"", key.first, key.second);
    for (size_t i = 0; i < kNumBuckets; ++i) {
      out += fmt::format("redcloud_http_request_duration_seconds_bucket{{{},le=\"{}\"}} {}\n",
                         labels, kBuckets[i], r.buckets[i]);
    }
    out += fmt::format("redcloud_http_request_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n",
                       labels, r.count);
    out += fmt::format("redcloud_http_request_duration_seconds_sum{{{}}} {}\n", labels, r.sum);
    out += fmt::format("redcloud_http_request_duration_seconds_count{{{}}} {}\n", labels, r.count);
  }
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, v);
  };
  counter("redcloud_bytes_in_total", "Upload bytes received.", bytesIn_.load());
  counter("redcloud_bytes_out_total", "Download bytes sent.", bytesOut_.load());
  counter("redcloud_chunks_written_total", "Chunks stored by uploads.", chunksWritten_.load());
  counter("redcloud_chunks_read_total", "Chunks read for downloads.", chunksRead_.load());
  counter("redcloud_checksum_failures_total", "Chunk copies that failed verification.",
          checksumFailures_.load());
  counter("redcloud_chunk_bytes_sent_total",
          "Chunk bytes this controller sent to chunkservers for uploads.", chunkBytesSent_.load());
  counter("redcloud_chunk_write_hedges_total",
          "Chunk writes raced by another chunkserver after the hedge delay.", writeHedges_.load());
  counter("redcloud_chunk_read_hedges_total",
          "Chunk reads raced by another holder after the hedge delay.", readHedges_.load());
  counter("redcloud_chunk_copies_total",
          "Chunkserver-to-chunkserver copies this controller asked for that succeeded.",
          copiesDone_.load());
  counter("redcloud_chunk_copy_failures_total",
          "Chunkserver-to-chunkserver copies this controller asked for that failed.",
          copiesFailed_.load());
  counter("redcloud_read_repairs_total",
          "Bad copies found by reads, reported and replaced from a good one.", readRepairs_.load());
  out += gauges;
  return out;
}

}  // namespace redcloud::controller
