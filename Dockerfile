# One image for every Tidepool process: the worker (workflows, activities, controller), the node agent, the
# admission webhook, the CLI, and tidepool-cni (a small static Go program) that the chart's init container
# copies to the host's /opt/cni/bin. Node.js 24 runs the TypeScript sources directly (type stripping), so
# there is no compile step; only the CNI is built. Select the process with the arguments:
#   src/worker/main.ts (default), src/agent/main.ts, src/webhook/main.ts, src/cli/main.ts <command>.

# The facts tidepool-cni shares with the agent come from the TypeScript that owns them (scripts/build-cni.ts
# prints the `go build` arguments); the Go stage builds the plugin with them, as `npm run build:cni` does.
FROM node:24-slim AS cni-facts
WORKDIR /build
COPY package.json tsconfig.json ./
COPY scripts scripts
COPY src src
RUN node scripts/build-cni.ts --go-build-args > /build/go-build-args

FROM golang:1.26 AS cni
WORKDIR /build
COPY src/cni/tidepool-cni ./
COPY --from=cni-facts /build/go-build-args ./
RUN mkdir /out && tr '\n' '\0' < go-build-args | CGO_ENABLED=0 xargs -0 go

FROM node:24-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-fund --no-audit --loglevel=error

FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=dependencies /app/node_modules node_modules
COPY package.json ./
COPY src src
COPY bin bin
COPY --from=cni /out/tidepool-cni /opt/tidepool/tidepool-cni
RUN ln -s /app/bin/kubectl-tidepool /usr/local/bin/kubectl-tidepool && ln -s /app/bin/kubectl-tidepool /usr/local/bin/tidepool
# The image's unprivileged user (uid 1000); the chart runs only the agent and the CNI installer as root.
USER node
ENTRYPOINT ["node"]
CMD ["src/worker/main.ts"]
