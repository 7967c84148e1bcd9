# Multi-stage build: compile with the Rust toolchain, run on a slim Debian with CA
# certificates as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo ./.cargo
# The simulators' crate is not built into the image, but cargo loads every workspace member.
COPY crates ./crates
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
# Without the simulators: no `idsync demo` or `idsync sim` in production.
RUN cargo build --release --locked --no-default-features --bin idsync

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/idsync --shell /usr/sbin/nologin idsync \
 && mkdir -p /var/lib/idsync /etc/idsync \
 && chown idsync:idsync /var/lib/idsync \
 && chmod 0700 /var/lib/idsync
COPY --from=build /src/target/release/idsync /usr/local/bin/idsync
USER idsync
WORKDIR /var/lib/idsync
# SQLITE_TMPDIR: imports stage in SQLite temporary tables; their (unlinked) file goes to the
# data volume, so a read-only root file system still works.
ENV IDSYNC_CONFIG=/etc/idsync/idsync.toml \
    IDSYNC__SERVER__LISTEN=0.0.0.0:9464 \
    SQLITE_TMPDIR=/var/lib/idsync
VOLUME ["/var/lib/idsync"]
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD curl -fsS http://127.0.0.1:9464/healthz || exit 1
# SIGTERM stops idsync gracefully (running imports finish up to server.shutdown_grace).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/idsync"]
CMD ["run"]
