# syntax=docker/dockerfile:1
# weft's image: a drop-in for flannel's (ENTRYPOINT weft; /opt/bin/flanneld
# links to it, so a kube-flannel DaemonSet that runs /opt/bin/flanneld keeps
# working with only the image swapped).
#
# Node 20 in both stages: the major version CI tests (.ci/run runs the full
# suite on Node 20; the unit tests also on Node 24). Both stages are Debian
# bookworm so the addon built by the builder's g++ links against the same
# glibc the runtime has.
#
# The RUN steps are scripts/docker-build.sh and scripts/docker-install.sh,
# which CI also runs outside Docker (scripts/prod-install-check.sh).

FROM node:20-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN bash scripts/docker-build.sh /src

FROM node:20-bookworm-slim AS runtime
# iproute2: ip(8) for the TUN address and routes; iptables/nftables: the
# ip-masq and FORWARD rules (net-conf EnableNFTables picks one).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 iptables nftables \
 && rm -rf /var/lib/apt/lists/*
# The builder's tree is bind-mounted for this step only: its dev
# dependencies and sources never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/src,target=/tmp/weft-build \
    bash /tmp/weft-build/scripts/docker-install.sh /tmp/weft-build /opt/weft /usr/local/bin \
 && mkdir -p /opt/bin \
 && ln -s /opt/weft/bin/weft.js /opt/bin/flanneld
ENV NODE_ENV=production
ENTRYPOINT ["weft"]
