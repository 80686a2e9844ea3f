# The agent's container image, for those with a registry to pull the build
# image from. Without one, scripts/build-image.sh makes the same image from
# a local build (the binary, what it links, CA certificates).
#
#   docker build -t aegis .
#   docker run -d --name aegis --network host --pid host \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /proc:/host/proc:ro -v aegis-state:/var/lib/aegis \
#     -v $PWD/aegis.toml:/etc/aegis/aegis.toml:ro aegis
#
# with `collect.proc_root = "/host/proc"` in aegis.toml (docs/install.md).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p aegis

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /etc/aegis /var/lib/aegis
COPY --from=build /src/target/release/aegis /usr/bin/aegis
VOLUME /var/lib/aegis
EXPOSE 9477
ENTRYPOINT ["/usr/bin/aegis"]
CMD ["run"]
