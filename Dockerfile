# allockit: the three binaries (allockit-server, loadgen, allockit-lab) in a slim image.
#
#   docker build -t allockit .
#   docker run --rm -p 8080:8080 allockit            # the server, segregated mode
#
# The default command serves the main listener on every interface and keeps the admin
# listener on the container's loopback; docker-compose.yml publishes the admin listener
# with a bearer token (ALLOCKIT_ADMIN_TOKEN).

FROM rust:1.95-bookworm AS build
# plotters' text rendering (loadgen's and allockit-lab's charts) links fontconfig and FreeType.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config libfontconfig1-dev libfreetype-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p allockit-server -p loadgen -p allockit-lab \
 && mkdir -p /out \
 && cp target/release/allockit-server target/release/loadgen target/release/allockit-lab /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libfontconfig1 libfreetype6 fonts-dejavu-core ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin allockit
COPY --from=build /out/ /usr/local/bin/
USER allockit
ENV ALLOCKIT_LISTEN=0.0.0.0:8080 \
    ALLOCKIT_ADMIN_LISTEN=127.0.0.1:9091
EXPOSE 8080 9091
CMD ["allockit-server"]
