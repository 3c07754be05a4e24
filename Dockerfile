# One image for every Tidepool process: the worker (workflows, activities, controller), the node agent, the
# admission webhook, the CLI, and tidepool-cni as a self-contained executable that the chart's init container
# copies to the host's /opt/cni/bin. Node.js 24 runs the TypeScript sources directly (type stripping), so
# there is no compile step; only the CNI is built. Select the process with the arguments:
#   src/worker/main.ts (default), src/agent/main.ts, src/webhook/main.ts, src/cli/main.ts <command>.

# The CNI as a Node.js single executable application (scripts/build-cni-sea.ts): esbuild and postject are
# development dependencies, so this stage installs them all.
FROM node:24-slim AS cni
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-fund --no-audit --loglevel=error
COPY tsconfig.json ./
COPY scripts scripts
COPY src src
RUN npm run build:cni-sea

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
COPY --from=cni /build/dist/tidepool-cni-sea /opt/tidepool/tidepool-cni
RUN ln -s /app/bin/kubectl-tidepool /usr/local/bin/kubectl-tidepool && ln -s /app/bin/kubectl-tidepool /usr/local/bin/tidepool
# The image's unprivileged user (uid 1000); the chart runs only the agent and the CNI installer as root.
USER node
ENTRYPOINT ["node"]
CMD ["src/worker/main.ts"]
