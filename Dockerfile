# DWCP agent image. Node 24 runs the TypeScript sources directly (type
# stripping), so there is no compile step, only runtime dependencies and the
# native addon.
#   docker build -t dwcp .
#   docker run dwcp --help
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: runtime npm dependencies and native-bindings ---------------------
FROM ${NODE_IMAGE} AS build
# C toolchain and kernel headers for native-bindings; python3 for node-gyp
# should a dependency have no prebuilt binary.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential linux-libc-dev python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# The image already has Node 24: skip devDependencies (the node@24 package,
# typescript, types).
# npm install, not npm ci: see scripts/setup.sh (unpublished optional packages of @currentspace/http3).
RUN npm install --omit=dev --no-audit --no-fund
COPY native-bindings/ native-bindings/
# build.sh takes N-API headers from node_modules/node (a devDependency,
# omitted above) or /usr/include/node; this image keeps them in
# /usr/local/include/node.
RUN ln -s /usr/local/include/node /usr/include/node \
 && bash native-bindings/build.sh

# --- runtime -----------------------------------------------------------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
# Fixed ids so the DaemonSet's securityContext (runAsUser 10001) and the data
# directory's owner agree.
RUN groupadd --system --gid 10001 dwcp \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin dwcp
WORKDIR /app
# package.json carries "type": "module", which the .ts sources need.
COPY package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/native-bindings/build native-bindings/build
COPY native-bindings/index.ts native-bindings/index.ts
COPY proto proto
COPY bin bin
COPY src src
USER 10001:10001
# Type-stripped, compiled modules kept across starts (src/util/compile-cache.ts).
ENV NODE_COMPILE_CACHE=/tmp/dwcp-compile-cache
# 7400: agent-to-agent (AMST); 9464: /metrics /healthz /readyz.
EXPOSE 7400 9464
ENTRYPOINT ["node", "src/cli.ts"]
CMD ["agent", "--config", "/etc/dwcp/dwcp.yaml"]
