#include "rpc/status_convert.h"

namespace redcloud {

grpc::Status toGrpc(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return grpc::Status::OK;
    case StatusCode::kInvalidRequest:
      return {grpc::StatusCode::INVALID_ARGUMENT, s.message()};
    case StatusCode::kChecksumMismatch:
      return {grpc::StatusCode::DATA_LOSS, s.message()};
    case StatusCode::kFileNotFound:
      return {grpc::StatusCode::NOT_FOUND, s.message()};
    case StatusCode::kStorageFull:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, s.message()};
    case StatusCode::kUnavailable:
      return {grpc::StatusCode::UNAVAILABLE, s.message()};
    default:
      return {grpc::StatusCode::INTERNAL, s.message()};
  }
}

Status fromGrpc(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return Status::ok();
    case grpc::StatusCode::INVALID_ARGUMENT:
      return invalidRequest(s.error_message());
    case grpc::StatusCode::DATA_LOSS:
      return {StatusCode::kChecksumMismatch, s.error_message()};
    case grpc::StatusCode::NOT_FOUND:
      return {StatusCode::kFileNotFound, s.error_message()};
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return {StatusCode::kStorageFull, s.error_message()};
    case grpc::StatusCode::UNAUTHENTICATED:
      // Not this request's fault: the nodes do not share a secret (or CA).
      return {StatusCode::kUnavailable,
              "refused by the peer (cluster secret or certificate mismatch): " + s.error_message()};
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
      return {StatusCode::kUnavailable, "peer unavailable: " + s.error_message()};
    default:
      return internalError("peer error: " + s.error_message());
  }
}

}  // namespace redcloud
