// Uploads and downloads: the streaming routes of HttpApi.
#include <spdlog/spdlog.h>

#include <deque>
#include <future>
#include <nlohmann/json.hpp>

#include "common/buffer_pool.h"
#include "common/validate.h"
#include "controller/chunks/chunk_fetcher.h"
#include "controller/chunks/upload_session.h"
#include "controller/controller.h"
#include "controller/http/http_api.h"
#include "controller/http/http_util.h"

namespace redcloud::controller {
namespace {

using nlohmann::json;

constexpr size_t kMaxTagsField = 64 * 1024;

std::string contentDisposition(const std::string& name) {
  std::string quoted;
  bool ascii = true;
  for (unsigned char ch : name) {
    if (ch >= 0x80) ascii = false;
    if (ch == '"' || ch == '\\') quoted += '\\';
    quoted += ascii || ch < 0x80 ? static_cast<char>(ch) : '_';
  }
  std::string out = "attachment; filename=\"" + quoted + "\"";
  if (!ascii) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    out += "; filename*=UTF-8''";
    for (unsigned char ch : name) {
      if (std::isalnum(ch) || ch == '.' || ch == '-' || ch == '_') {
        out += static_cast<char>(ch);
      } else {
        out += '%';
        out += kHex[ch >> 4];
        out += kHex[ch & 0xf];
      }
    }
  }
  return out;
}

// Streams the chunks covering one byte range, fetching the next chunk while
// the current one is written to the socket.
class DownloadStream {
 public:
  DownloadStream(ChunkFetcher fetcher, std::vector<ChunkRef> chunks, ByteRange range,
                 TransferBudget& budget)
      : fetcher_(fetcher), chunks_(std::move(chunks)), range_(range), budget_(budget) {
    uint64_t at = 0;
    for (const auto& c : chunks_) {
      starts_.push_back(at);
      at += c.size;
    }
  }

  ~DownloadStream() {
    for (auto& a : ahead_) {
      if (a.data.valid()) a.data.wait();
      budget_.release(a.reserved);
    }
    BufferPool::chunks().give(std::move(data_));
  }

  size_t chunkAt(uint64_t pos) const {
    size_t i = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), pos) -
                                   starts_.begin());
    return i - 1;
  }

  // Fetches the first chunk before the status line, so an unreadable file
  // still gets a proper error status.
  Status prime() {
    current_ = chunkAt(range_.start);
    auto data = fetcher_.fetch(chunks_[current_].id);
    if (!data.isOk()) return data.status();
    data_ = std::move(*data);
    prefetch(current_ + 1);
    return Status::ok();
  }

  // The server asks for bytes from `offset` (relative to the range).
  bool write(size_t offset, http::DataSink& sink, Metrics& metrics) {
    uint64_t pos = range_.start + offset;
    size_t idx = chunkAt(pos);
    if (idx != current_) {
      if (idx != current_ + 1) return false;
      // The chunk sent is done: its buffer goes first, so that a fetch made
      // now (none was read ahead: the budget was full) is the only one held.
      BufferPool::chunks().give(std::move(data_));
      Result<ChunkBuffer> data = ChunkBuffer();
      if (ahead_.empty()) {
        data = fetcher_.fetch(chunks_[idx].id);
      } else {
        data = ahead_.front().data.get();
        // It becomes this download's own buffer: its reservation goes back.
        budget_.release(ahead_.front().reserved);
        ahead_.pop_front();
      }
      if (!data.isOk()) {
        spdlog::error("download aborted: {}", data.status().message());
        return false;  // the connection is cut: never a short body that looks complete
      }
      data_ = std::move(*data);
      current_ = idx;
      prefetch(idx + 1);
    }
    uint64_t inChunk = pos - starts_[idx];
    uint64_t end = std::min<uint64_t>(data_.size(), range_.start + range_.length - starts_[idx]);
    if (inChunk >= end) return false;  // a chunk shorter than its record: cut, never overread
    size_t n = static_cast<size_t>(end - inChunk);
    metrics.addBytesOut(n);
    return sink.write(data_.data() + inChunk, n);
  }

 private:
  // Keeps up to kAhead chunks being fetched (read, verified) after `from`, in
  // order, so disk reads, hashing and sending overlap. Each chunk read ahead
  // takes its room from the transfer budget; while the budget is full there
  // is no read-ahead and the next chunk is fetched when it is needed.
  void prefetch(size_t from) {
    static constexpr size_t kAhead = 4;
    size_t end = std::min(chunks_.size(), from + kAhead);
    for (size_t idx = from + ahead_.size(); idx < end; ++idx) {
      if (starts_[idx] >= range_.start + range_.length) break;
      if (!budget_.tryAcquire(chunks_[idx].size)) break;
      uint64_t reserved = chunks_[idx].size;
      std::string id = chunks_[idx].id;
      ahead_.push_back(
          {std::async(std::launch::async, [f = fetcher_, id]() mutable { return f.fetch(id); }),
           reserved});
    }
  }

  struct Ahead {
    std::future<Result<ChunkBuffer>> data;
    uint64_t reserved = 0;  // taken from the budget
  };
  ChunkFetcher fetcher_;
  std::vector<ChunkRef> chunks_;
  std::vector<uint64_t> starts_;
  ByteRange range_;
  TransferBudget& budget_;
  size_t current_ = 0;
  ChunkBuffer data_;
  std::deque<Ahead> ahead_;  // chunks current_+1, +2, …
};

// The most bytes an upload named `name` may bring under --user-quota (the
// file it replaces frees its bytes); UINT64_MAX without a quota.
Result<uint64_t> quotaAllowance(FileService& files, uint64_t quota, const std::string& owner,
                                const std::string& name) {
  if (quota == 0) return UINT64_MAX;
  RC_ASSIGN_OR_RETURN(uint64_t used, files.usedBytes(owner));
  RC_ASSIGN_OR_RETURN(uint64_t freed, files.sizeOf(owner, name));
  uint64_t kept = used - std::min(used, freed);
  return quota > kept ? quota - kept : 0;
}

Status overQuota(uint64_t quota) {
  return Status(
      StatusCode::kQuotaExceeded,
      "this upload would take your files past your quota of " + std::to_string(quota) + " bytes");
}

}  // namespace

void HttpApi::handlePutUpload(RequestContext& c, const http::ContentReader& reader) {
  auto name = nameFromTarget(c.req);
  if (!name.isOk()) return writeError(c.res, name.status());
  auto tags = tagsParam(c.req, true);
  if (!tags.isOk()) {
    return writeError(
        c.res, Status(StatusCode::kInvalidTagQuery,
                      "At least one tag is required for file upload: " + tags.status().message()));
  }
  uint64_t max = controller_.options().maxUploadSize;
  Status tooLarge(StatusCode::kPayloadTooLarge, "upload exceeds --max-upload-size");
  // Refusals before the body is read close the connection: the unread body
  // must never be taken for the next request.
  if (max && c.req.has_header("Content-Length") &&
      std::strtoull(c.req.get_header_value("Content-Length").c_str(), nullptr, 10) > max) {
    c.res.set_header("Connection", "close");
    return writeError(c.res, tooLarge);
  }
  auto slot = controller_.uploadSlot(c.userId);
  if (!slot.isOk()) {
    c.res.set_header("Connection", "close");
    return writeError(c.res, slot.status());
  }
  const uint64_t quota = controller_.options().userQuota;
  auto allowance = quotaAllowance(controller_.files(), quota, c.userId, *name);
  if (!allowance.isOk()) {
    c.res.set_header("Connection", "close");
    return writeError(c.res, allowance.status());
  }
  if (c.req.has_header("Content-Length") &&
      std::strtoull(c.req.get_header_value("Content-Length").c_str(), nullptr, 10) > *allowance) {
    c.res.set_header("Connection", "close");
    return writeError(c.res, overQuota(quota));
  }
  auto made = controller_.newUploadSession();
  if (!made.isOk()) {
    c.res.set_header("Connection", "close");
    return writeError(c.res, made.status());
  }
  UploadSession& session = **made;
  if (c.req.has_header("Content-Length")) {
    session.setSizeHint(
        std::strtoull(c.req.get_header_value("Content-Length").c_str(), nullptr, 10));
  }
  Status feedStatus;
  bool over = false, overQuotaNow = false;
  bool complete = reader([&](const char* data, size_t n) {
    if (max && session.bytesReceived() + n > max) {
      over = true;
      return false;
    }
    if (session.bytesReceived() + n > *allowance) {
      overQuotaNow = true;
      return false;
    }
    feedStatus = session.feed(data, n);
    return feedStatus.isOk();
  });
  controller_.metrics().addBytesIn(session.bytesReceived());
  if (over || overQuotaNow) {
    c.res.set_header("Connection", "close");
    return writeError(c.res, over ? tooLarge : overQuota(quota));
  }
  if (!feedStatus.isOk()) return writeError(c.res, feedStatus);
  if (!complete) {
    c.res.set_header("Connection", "close");
    return writeError(c.res, invalidRequest("upload body was truncated"));
  }
  auto content = session.finish();
  if (!content.isOk()) return writeError(c.res, content.status());
  controller_.metrics().addChunksWritten(content->chunks.size());
  auto result = controller_.files().commitUpload(
      {c.userId, *name, *tags, content->size, content->sha256, content->chunks,
       [&] { return content->completeChunks(); }, [&] { content->syncChunks(); }});
  if (!result.isOk()) return writeError(c.res, result.status());
  json body = fileJson(result->file);
  body["replaced_file_id"] = result->replacedFileId ? json(*result->replacedFileId) : json(nullptr);
  c.res.status = 201;
  c.res.set_content(body.dump(), "application/json");
}

void HttpApi::handleMultipartUpload(RequestContext& c, const http::ContentReader& reader) {
  if (!c.req.is_multipart_form_data()) {
    return writeError(c.res, invalidRequest("POST /files takes multipart/form-data"));
  }
  auto slot = controller_.uploadSlot(c.userId);
  if (!slot.isOk()) {
    c.res.set_header("Connection", "close");
    return writeError(c.res, slot.status());
  }
  const uint64_t quota = controller_.options().userQuota;
  uint64_t allowance = UINT64_MAX;
  auto made = controller_.newUploadSession();
  if (!made.isOk()) {
    c.res.set_header("Connection", "close");
    return writeError(c.res, made.status());
  }
  uint64_t max = controller_.options().maxUploadSize;
  std::unique_ptr<UploadSession> session;
  std::string field, fileName, tagsText;
  uint64_t otherBytes = 0;
  Status error;
  bool over = false;
  bool complete = reader(
      [&](const http::MultipartHeader& part) {
        field = part.name;
        if (field != "file") return true;
        if (session) {
          error = invalidRequest("only one 'file' part is allowed");
          return false;
        }
        fileName = part.filename;
        error = validateFileName(fileName);
        if (error.isOk()) {
          auto a = quotaAllowance(controller_.files(), quota, c.userId, fileName);
          if (a.isOk()) allowance = *a;
          error = a.status();
        }
        if (error.isOk()) session = std::move(*made);
        return error.isOk();
      },
      [&](const char* data, size_t n) {
        if (field == "tags") {
          tagsText.append(data, n);
          if (tagsText.size() > kMaxTagsField) error = invalidRequest("'tags' field is too large");
          return error.isOk();
        }
        if (field != "file") {  // fields this route ignores are bounded too
          otherBytes += n;
          if (otherBytes > kMaxTagsField)
            error = invalidRequest("unknown form fields are too large");
          return error.isOk();
        }
        if (!session) return true;
        if (max && session->bytesReceived() + n > max) {
          over = true;
          return false;
        }
        if (session->bytesReceived() + n > allowance) {
          error = overQuota(quota);
          return false;
        }
        error = session->feed(data, n);
        return error.isOk();
      });
  if (session) controller_.metrics().addBytesIn(session->bytesReceived());
  if (over) {
    c.res.set_header("Connection", "close");
    return writeError(c.res,
                      Status(StatusCode::kPayloadTooLarge, "upload exceeds --max-upload-size"));
  }
  if (!error.isOk()) {
    c.res.set_header("Connection", "close");
    return writeError(c.res, error);
  }
  if (!complete) {
    c.res.set_header("Connection", "close");
    return writeError(c.res, invalidRequest("upload body was truncated or malformed"));
  }
  if (!session) return writeError(c.res, invalidRequest("multipart part 'file' is required"));
  auto tags =
      normalizeTags(splitCommaList(tagsText), "At least one tag is required for file upload; tags");
  if (!tags.isOk()) return writeError(c.res, tags.status());
  auto content = session->finish();
  if (!content.isOk()) return writeError(c.res, content.status());
  controller_.metrics().addChunksWritten(content->chunks.size());
  auto result = controller_.files().commitUpload(
      {c.userId, fileName, *tags, content->size, content->sha256, content->chunks,
       [&] { return content->completeChunks(); }, [&] { content->syncChunks(); }});
  if (!result.isOk()) return writeError(c.res, result.status());
  json body = fileJson(result->file);
  body["replaced_file_id"] = result->replacedFileId ? json(*result->replacedFileId) : json(nullptr);
  c.res.status = 201;
  c.res.set_content(body.dump(), "application/json");
}

void HttpApi::handleDownload(RequestContext& c, bool byName) {
  Result<FileRow> file = Status(StatusCode::kFileNotFound, "file not found");
  if (byName) {
    auto name = nameFromTarget(c.req);
    if (!name.isOk()) return writeError(c.res, name.status());
    file = controller_.files().getFileByName(c.userId, *name);
  } else {
    file = controller_.files().getFile(c.userId, std::string(c.req.matches[1]));
  }
  if (!file.isOk()) return writeError(c.res, file.status());
  auto slot = controller_.downloadSlot(c.userId);
  if (!slot.isOk()) return writeError(c.res, slot.status());
  auto range = parseRange(c.req.get_header_value("Range"), file->size);
  if (!range.isOk()) {
    writeError(c.res, range.status());
    c.res.set_header("Content-Range", "bytes */" + std::to_string(file->size));
    return;
  }
  c.res.set_header("Content-Disposition", contentDisposition(file->name));
  c.res.set_header("ETag", "\"" + file->sha256 + "\"");
  c.res.set_header("Accept-Ranges", "bytes");
  if (range->partial) {
    c.res.status = 206;
    c.res.set_header("Content-Range", "bytes " + std::to_string(range->start) + "-" +
                                          std::to_string(range->start + range->length - 1) + "/" +
                                          std::to_string(file->size));
  }
  if (range->length == 0) {
    c.res.set_content("", "application/octet-stream");
    return;
  }
  auto stream = std::make_shared<DownloadStream>(controller_.newFetcher(), file->chunks, *range,
                                                 controller_.transferBudget());
  if (c.req.method != "HEAD") {
    Status primed = stream->prime();
    if (!primed.isOk()) {
      c.res.headers.erase("Content-Range");
      c.res.headers.erase("Content-Disposition");
      c.res.headers.erase("ETag");
      return writeError(c.res, primed);
    }
  }
  Metrics& metrics = controller_.metrics();
  // Runs after the handler returned, outside run()'s catch: a failure here
  // cuts the connection (never a short body that looks complete) and is
  // logged, never left to end the process.
  c.res.set_content_provider(
      range->length, "application/octet-stream",
      [stream, &metrics, id = file->fileId, slot = *slot](uint64_t offset, http::DataSink& sink) {
        try {
          return stream->write(offset, sink, metrics);
        } catch (const std::exception& e) {
          spdlog::error("download of file {} aborted at byte {}: {}", id, offset, e.what());
          return false;
        }
      });
}

}  // namespace redcloud::controller
