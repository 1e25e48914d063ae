# Gatehouse reference server: built in a full Node image, run in a distroless one as uid/gid 65534,
# on a read-only root filesystem with /config (ro), /auths, /logs and /tls (ro) as volumes.
#
#   docker build -t gatehouse .
#   docker compose up -d            # docker-compose.yml adds read_only, cap_drop, no-new-privileges, seccomp
#
# Base images are pinned by tag here. release.yml resolves each tag to its multi-arch index digest,
# builds with IMAGE:TAG@sha256:... passed as build arguments, and publishes the digests it used
# (base-images.txt, checksummed and signed with the release). To pin a local build the same way:
#   docker build --build-arg BUILD_IMAGE=node:20-bookworm-slim@sha256:<digest> \
#                --build-arg RUNTIME_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot@sha256:<digest> .
ARG BUILD_IMAGE=node:20-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY package.json package-lock.json tsconfig.json tsconfig.base.json LICENSE ./
COPY packages/ packages/
# The full workspace install is needed to compile; no install scripts run (none is needed at run time).
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts
RUN npm run build
# Production dependencies only: the server's dependency closure from package-lock.json, its compiled
# workspace packages, the default /config/config.yaml, and empty /auths, /logs (0700) and /tls.
COPY scripts/stage-runtime.js scripts/
RUN node scripts/stage-runtime.js --container /out \
 && node -e "require('/out/app/packages/server/package.json')"

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="gatehouse" \
      org.opencontainers.image.description="Defence in depth for LLM API gateways: the Gatehouse reference server" \
      org.opencontainers.image.source="https://github.com/gatehouse-dev/gatehouse" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/app /app
COPY --from=build /out/config /config
COPY --from=build /out/tls /tls
# Docker copies a volume's ownership from the image into a new named volume: 65534 can write there.
COPY --from=build --chown=65534:65534 /out/auths /auths
COPY --from=build --chown=65534:65534 /out/logs /logs
WORKDIR /app
ENV NODE_ENV=production \
    GATEHOUSE_HOST=0.0.0.0
USER 65534:65534
VOLUME ["/config", "/auths", "/logs", "/tls"]
EXPOSE 8317 9090
# Distroless has no shell and no curl: node asks /healthz itself. Set GATEHOUSE_HEALTHCHECK_URL
# (https://127.0.0.1:8317/healthz) when TLS is on; the probe stays on loopback and sends no credential.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/nodejs/bin/node", "-e", "const u=new URL(process.env.GATEHOUSE_HEALTHCHECK_URL||'http://127.0.0.1:'+(process.env.GATEHOUSE_PORT||8317)+'/healthz');require(u.protocol==='https:'?'https':'http').get(u,{rejectUnauthorized:false,timeout:4000},r=>process.exit(r.statusCode===200?0:1)).on('timeout',()=>process.exit(1)).on('error',()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/nodejs/bin/node", "/app/packages/server/dist/cli.js"]
CMD ["--config", "/config/config.yaml"]
