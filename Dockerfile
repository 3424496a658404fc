# Cinnabar: build in a Rust image, run from a slim Debian image.
#   docker build -t cinnabar .
#   docker run --rm -p 6379:6379 cinnabar                     # development defaults, bound to all interfaces
#   docker run --rm -p 7000-7002:7000-7002 cinnabar cluster --shards 3 --port 7000 --dir /data/cluster \
#       -- --bind 0.0.0.0 --protected-mode no                   # a 3-shard cluster; nodes announce 127.0.0.1
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/cinnabar || true

FROM debian:bookworm-slim
RUN useradd --system --home /data cinnabar && mkdir -p /data && chown cinnabar /data
COPY --from=build /src/target/release/cinnabar /usr/local/bin/cinnabar
COPY config/ /etc/cinnabar/
USER cinnabar
WORKDIR /data
EXPOSE 6379 6380 10000
# Inside a container the port must be reachable from outside the container.
ENTRYPOINT ["cinnabar"]
CMD ["--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data"]
