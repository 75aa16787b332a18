#include "client/transfer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "client/progress.h"
#include "client/terminal.h"
#include "common/sha256.h"
#include "common/validate.h"

namespace redcloud::client {
namespace {

using nlohmann::json;

constexpr size_t kPieceBytes = 256 * 1024;

std::string errnoText() { return std::strerror(errno); }

std::string folderOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool isFolder(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool writeAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// An open file descriptor, closed on destruction.
class FileHandle {
 public:
  explicit FileHandle(int fd) : fd_(fd) {}
  ~FileHandle() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// Upload state: reads the file at the offsets httplib asks for and hashes it.
class UploadStream {
 public:
  UploadStream(int fd, uint64_t size, ProgressBar& progress)
      : fd_(fd), size_(size), progress_(progress) {}

  bool provide(size_t offset, size_t length, httplib::DataSink& sink) {
    if (offset == 0) hasher_ = std::make_unique<Sha256>();  // a (re)start
    if (interruptRequested()) {
      error_ = "interrupted";
      return false;
    }
    std::string buf(std::min(length, kPieceBytes), '\0');
    ssize_t n = ::pread(fd_, buf.data(), buf.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) {
      error_ = n < 0 ? "cannot read the file: " + errnoText() : "the file shrank during upload";
      return false;
    }
    hasher_->update(buf.data(), static_cast<size_t>(n));
    progress_.update(offset + static_cast<uint64_t>(n));
    return sink.write(buf.data(), static_cast<size_t>(n));
  }
  std::string digest() { return hasher_ ? hasher_->finishHex() : Sha256().finishHex(); }
  const std::string& error() const { return error_; }
  uint64_t size() const { return size_; }

 private:
  int fd_;
  uint64_t size_;
  ProgressBar& progress_;
  std::unique_ptr<Sha256> hasher_;
  std::string error_;
};

// Download state: one temporary file that every attempt rewrites from the start.
class DownloadStream {
 public:
  DownloadStream(int fd, std::string label, bool showProgress)
      : fd_(fd), label_(std::move(label)), showProgress_(showProgress) {}

  bool start(const ApiResponse& head) {
    hasher_ = std::make_unique<Sha256>();
    received_ = 0;
    std::string len = head.header("Content-Length");
    expected_ = len.empty() ? std::optional<uint64_t>() : std::strtoull(len.c_str(), nullptr, 10);
    etag_ = sha256FromEtag(head.header("ETag"));
    progress_ = std::make_unique<ProgressBar>(label_, expected_.value_or(0), showProgress_);
    if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0) return fail();
    return true;
  }
  bool write(const char* data, size_t len) {
    if (!writeAll(fd_, data, len)) return fail();
    hasher_->update(data, len);
    received_ += len;
    progress_->update(received_);
    return true;
  }
  // Checks length and digest once the body is complete.
  Result<std::string> verify() {
    std::string digest = hasher_ ? hasher_->finishHex() : Sha256().finishHex();
    if (expected_ && *expected_ != received_) {
      return Status(StatusCode::kChecksumMismatch, "download incomplete: got " +
                                                       std::to_string(received_) + " of " +
                                                       std::to_string(*expected_) + " bytes");
    }
    if (!etag_.empty() && etag_ != digest) {
      return Status(StatusCode::kChecksumMismatch,
                    "checksum mismatch: expected " + etag_ + ", got " + digest);
    }
    if (progress_) progress_->finish();
    return digest;
  }
  void abandonProgress() {
    if (progress_) progress_->abandon();
  }
  const std::string& error() const { return error_; }
  uint64_t received() const { return received_; }

 private:
  bool fail() {
    error_ = "cannot write the download: " + errnoText();
    return false;
  }

  int fd_;
  std::string label_;
  bool showProgress_;
  std::unique_ptr<Sha256> hasher_;
  std::unique_ptr<ProgressBar> progress_;
  std::optional<uint64_t> expected_;
  std::string etag_;
  uint64_t received_ = 0;
  std::string error_;
};

std::string uploadPath(const std::string& name, const std::vector<std::string>& tags) {
  return "/api/v1/files/by-name/" + percentEncode(name) + "?tags=" + tagsQuery(tags);
}

Status checkServerDigest(const json& body, UploadStream& stream) {
  std::string local = stream.digest();
  if (!body.is_object() || !body.contains("sha256") || !body["sha256"].is_string()) {
    return Status::ok();
  }
  std::string remote = body["sha256"].get<std::string>();
  if (remote == local) return Status::ok();
  return Status(StatusCode::kChecksumMismatch, "the server stored sha256 " + remote +
                                                   " but the local file has " + local +
                                                   " (was it modified during the upload?)");
}

// Gives the finished temporary file the mode a new file would get, then renames it.
Status commitDownload(FileHandle& fd, const std::string& tmp, const std::string& dest) {
  mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd.get(), 0666 & ~mask);
  if (::fsync(fd.get()) != 0 || ::close(fd.release()) != 0) {
    return ioError("cannot write " + tmp + ": " + errnoText());
  }
  if (::rename(tmp.c_str(), dest.c_str()) != 0) {
    return ioError("cannot rename the download to " + dest + ": " + errnoText());
  }
  return Status::ok();
}

// Runs the GET into `stream`; on success returns the digest.
Result<std::string> fetchInto(ApiClient& api, const std::string& name, DownloadStream& stream) {
  DownloadSink sink;
  sink.start = [&](const ApiResponse& head) { return stream.start(head); };
  sink.write = [&](const char* d, size_t n) { return stream.write(d, n); };
  sink.error = [&] { return stream.error(); };
  ApiRequest req;
  req.path = "/api/v1/files/by-name/" + percentEncode(name) + "/download";
  req.download = &sink;
  auto resp = api.send(req);
  if (!resp.isOk()) return resp.status();
  if (!resp->ok()) return statusFromResponse(*resp);
  return stream.verify();
}

}  // namespace

std::string baseName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string sha256FromEtag(const std::string& etag) {
  std::string s(trim(etag));
  if (s.rfind("W/", 0) == 0) s = s.substr(2);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return isSha256Hex(s) ? s : "";
}

Result<nlohmann::json> uploadFile(ApiClient& api, const std::string& localPath,
                                  const std::string& name, const std::vector<std::string>& tags,
                                  bool showProgress) {
  FileHandle fd(::open(localPath.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ioError("cannot open " + localPath + ": " + errnoText());
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ioError("cannot read " + localPath + ": " + errnoText());
  if (!S_ISREG(st.st_mode)) return ioError("Not a file: " + localPath);
  ProgressBar progress(name, static_cast<uint64_t>(st.st_size), showProgress && st.st_size > 0);
  UploadStream stream(fd.get(), static_cast<uint64_t>(st.st_size), progress);
  UploadBody body;
  body.size = stream.size();
  body.provide = [&](size_t off, size_t len, httplib::DataSink& s) {
    return stream.provide(off, len, s);
  };
  body.error = [&] { return stream.error(); };
  ApiRequest req;
  req.method = "PUT";
  req.path = uploadPath(name, tags);
  req.idempotent = false;
  req.upload = &body;
  RC_ASSIGN_OR_RETURN(ApiResponse resp, api.send(req));
  if (!resp.ok()) return statusFromResponse(resp);
  progress.finish();
  json answer = json::parse(resp.body, nullptr, false);
  if (answer.is_discarded())
    return Status(StatusCode::kInternal, "the controller sent malformed JSON");
  RC_RETURN_IF_ERROR(checkServerDigest(answer, stream));
  return answer;
}

Result<std::string> resolveDownloadPath(const std::string& name,
                                        const std::optional<std::string>& dest) {
  if (!dest || dest->empty()) return name;
  if (isFolder(*dest)) return (dest->back() == '/' ? *dest : *dest + "/") + name;
  if (dest->back() == '/') return ioError("No such folder: " + *dest);
  std::string folder = folderOf(*dest);
  if (!isFolder(folder)) return ioError("No such folder: " + folder);
  return *dest;
}

Result<DownloadResult> downloadFile(ApiClient& api, const std::string& name,
                                    const std::string& destPath, bool showProgress) {
  std::string tmp = folderOf(destPath) + "/.redcloud-download-XXXXXX";
  FileHandle fd(::mkstemp(tmp.data()));
  if (fd.get() < 0)
    return ioError("cannot create a file in " + folderOf(destPath) + ": " + errnoText());
  DownloadStream stream(fd.get(), name, showProgress);
  auto digest = fetchInto(api, name, stream);
  Status committed = digest.isOk() ? commitDownload(fd, tmp, destPath) : digest.status();
  if (!committed.isOk()) {
    stream.abandonProgress();
    ::unlink(tmp.c_str());
    return committed;
  }
  return DownloadResult{destPath, stream.received(), *digest};
}

}  // namespace redcloud::client
