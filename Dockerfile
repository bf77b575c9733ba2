# mxscreen container: build and unit-test in one stage, run from a slim one as a non-root user.
# Build: docker build -t mxscreen .
# Run:   docker run -d --name mxscreen -p 25:25 -p 127.0.0.1:9425:9425 \
#          -v /etc/mxscreen:/etc/mxscreen:ro -v mxscreen-state:/var/lib/mxscreen mxscreen
# Without docker: scripts/container-check builds it with podman and runs its runtime stage.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps scripts/install-deps
RUN ./scripts/install-deps --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
# Release with warnings as errors, in build-release/: what CI compiles (scripts/build-release).
RUN ./scripts/build-release mxscreen unit_tests \
 && build-release/unit_tests --gtest_brief=1 \
 && strip build-release/mxscreen

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libuv1 libssl3 libudns0 liblmdb0 libhiredis0.14 libre2-9 \
      libtomlplusplus3 libpsl5 publicsuffix ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/mxscreen --shell /usr/sbin/nologin mxscreen \
 && install -d -o mxscreen -g mxscreen -m 0750 /var/lib/mxscreen /etc/mxscreen
COPY --from=build /src/build-release/mxscreen /usr/sbin/mxscreen
COPY --from=build /src/config.toml.example /usr/share/doc/mxscreen/config.toml.example
COPY docker/config.toml /etc/mxscreen/config.toml
# Docker (>= 20.10) lets an unprivileged user bind port 25 inside the container's network
# namespace (net.ipv4.ip_unprivileged_port_start=0), so mxscreen never needs root here.
USER mxscreen
EXPOSE 25 9425
VOLUME ["/var/lib/mxscreen"]
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["bash", "-c", \
  "exec 3<>/dev/tcp/127.0.0.1/9425 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '^ok' <&3"]
ENTRYPOINT ["/usr/sbin/mxscreen"]
CMD ["--config", "/etc/mxscreen/config.toml"]
