# syntax=docker/dockerfile:1
# weft's image: a drop-in for flannel's. ENTRYPOINT weft; /opt/bin/flanneld
# and /opt/bin/install-conf are where kube-flannel.yml and flannel's Helm
# chart run them, so those manifests work with only the image swapped; the
# iptables commands follow the host's mode (legacy or nft) as in flannel's
# image (docs/image.md).
#
# Node 24 LTS in both stages, both Debian bookworm so the addon built by the
# builder's g++ links against the same glibc the runtime has. The bases are
# build arguments: the defaults are Docker Hub's node images;
# scripts/image-build.sh passes equivalents built from Debian packages.
#
# The RUN steps are scripts/docker-build.sh and scripts/docker-install.sh,
# which CI also runs outside Docker (scripts/prod-install-check.sh). Their
# npm reads the optional build secret "npmrc" (--secret id=npmrc,src=FILE):
# a registry mirror, a token or a proxy's CA, kept out of every layer.

ARG BUILDER_IMAGE=node:24-bookworm
ARG RUNTIME_IMAGE=node:24-bookworm-slim

FROM ${BUILDER_IMAGE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=secret,id=npmrc \
    NPM_CONFIG_USERCONFIG=/run/secrets/npmrc bash scripts/docker-build.sh /src

FROM ${RUNTIME_IMAGE} AS runtime
# iproute2: ip(8) for the TUN address and routes; iptables (its legacy and
# nft binaries both) and nftables: the ip-masq and FORWARD rules (net-conf
# EnableNFTables picks nftables).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 iptables nftables \
 && rm -rf /var/lib/apt/lists/*
# The builder's tree is bind-mounted for this step only: its dev
# dependencies and sources never become a layer of this image. (npm leaves
# Node's compile cache in /tmp; nothing at run time reads it.)
RUN --mount=type=bind,from=builder,source=/src,target=/tmp/weft-build --mount=type=secret,id=npmrc \
    NPM_CONFIG_USERCONFIG=/run/secrets/npmrc bash /tmp/weft-build/scripts/docker-install.sh /tmp/weft-build /opt/weft /usr/local/bin \
 && install -m 0755 /tmp/weft-build/scripts/image-iptables-wrapper.sh /usr/sbin/iptables-wrapper \
 && /usr/sbin/iptables-wrapper install \
 && chmod 0755 /opt/weft/bin/install-conf.js \
 && mkdir -p /opt/bin \
 && ln -s /opt/weft/bin/weft.js /opt/bin/flanneld \
 && ln -s /opt/weft/bin/install-conf.js /opt/bin/install-conf \
 && rm -rf /tmp/node-compile-cache
ENV NODE_ENV=production
ENTRYPOINT ["weft"]
