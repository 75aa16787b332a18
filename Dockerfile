# One image for every role: `redcloud controller`, `redcloud chunkserver`,
# `redcloud server`, or the client. Built on debian:bookworm with the same
# set-up script as the README; runs on bookworm-slim as a non-root user.
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
RUN bash scripts/setup.sh
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && ninja -C build -j2 redcloud

FROM debian:bookworm-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libsqlite3-0 libcpp-httplib0.11 libspdlog1.10 libfmt9 \
      libsodium23 libssl3 libedit2 libtcmalloc-minimal4 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --uid 10001 redcloud \
 && mkdir -p /data && chown redcloud /data
COPY --from=build /src/build/redcloud /usr/local/bin/redcloud
USER redcloud
VOLUME /data
ENV REDCLOUD_DATA_DIR=/data
EXPOSE 8000 8001 50051
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD curl -fsS http://127.0.0.1:8000/ready >/dev/null || exit 1
ENTRYPOINT ["redcloud"]
CMD ["controller"]
