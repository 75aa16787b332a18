// Status <-> grpc::Status: the one place this conversion happens, for every
// gRPC service and client of ours.
#pragma once

#include <grpcpp/grpcpp.h>

#include "common/status.h"

namespace redcloud {

grpc::Status toGrpc(const Status& s);
Status fromGrpc(const grpc::Status& s);

}  // namespace redcloud
