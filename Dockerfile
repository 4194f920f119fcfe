# Swerve: one image for every role (controller, node, router, the one-shot applier).
#   docker build -t swerve .
# Build stage: the official Swift image; the binary links the Swift runtime and Foundation
# statically, so the run stage needs only libhiredis (and curl for health checks).
FROM swift:6.3-bookworm AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libhiredis-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first: a source change does not re-resolve them.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
# The release link's function order (Package.swift says why).
COPY ops/symbol-order.txt ./ops/
RUN swift build -c release --product swerve --static-swift-stdlib \
    && install -D "$(swift build -c release --show-bin-path)/swerve" /out/swerve

FROM debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libhiredis0.14 curl ca-certificates python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --uid 10001 swerve
COPY --from=build /out/swerve /usr/local/bin/swerve
COPY examples /etc/swerve/examples
USER swerve
ENTRYPOINT ["swerve"]
CMD ["--help"]
