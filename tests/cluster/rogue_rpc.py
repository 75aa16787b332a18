"""An outsider's gRPC calls, run inside a namespace of the test network.

    python3 rogue_rpc.py '<json list of calls>'

Each call is {"target": "host:port", "method": "/redcloud.chunk.ChunkService/X",
"kind": "unary" | "client_stream" | "server_stream", "request": "<hex bytes>"
(for client_stream: a list of hex messages), "token": null | "<hex>"}.
Prints one JSON line: [{"code": "UNAUTHENTICATED" | "OK" | ..., "detail": ...,
"response": "<hex of the responses>"}]. Messages are raw protobuf bytes
(encoded by the test), so no generated code is needed: this is what anyone on
the network can send.
"""
import json
import sys

import grpc

TOKEN_HEADER = "x-redcloud-cluster-token"


def call(c):
    channel = grpc.insecure_channel(c["target"])
    metadata = [(TOKEN_HEADER, c["token"])] if c.get("token") else None
    ident = lambda b: b  # noqa: E731 (raw bytes in, raw bytes out)
    try:
        if c["kind"] == "unary":
            fn = channel.unary_unary(c["method"], request_serializer=ident,
                                     response_deserializer=ident)
            out = [fn(bytes.fromhex(c["request"]), metadata=metadata, timeout=20)]
        elif c["kind"] == "client_stream":
            fn = channel.stream_unary(c["method"], request_serializer=ident,
                                      response_deserializer=ident)
            out = [fn(iter([bytes.fromhex(m) for m in c["request"]]), metadata=metadata,
                      timeout=20)]
        else:
            fn = channel.unary_stream(c["method"], request_serializer=ident,
                                      response_deserializer=ident)
            out = list(fn(bytes.fromhex(c["request"]), metadata=metadata, timeout=20))
        return {"code": "OK", "detail": "", "response": b"".join(out).hex()}
    except grpc.RpcError as e:
        return {"code": e.code().name, "detail": e.details() or "", "response": ""}
    finally:
        channel.close()


if __name__ == "__main__":
    print(json.dumps([call(c) for c in json.loads(sys.argv[1])]))
