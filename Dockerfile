# Production image. Node 24 LTS: better-sqlite3 12 (the embedded index) builds against it.
FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc ./
RUN npm ci
COPY tsconfig.json ./
COPY server ./server
COPY viewer ./viewer
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# Debian 12's ffmpeg (libx264): the lossy policy's video re-encoding (PACS_LIFECYCLE_LOSSY; without it video is skipped, "ffmpeg not available").
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/server/dist ./server/dist
COPY --from=build /app/viewer/dist ./viewer/dist
# The model registry (manifest + .onnx pinned by sha256) ships with the image.
COPY models ./models
COPY package.json ./
USER node
EXPOSE 8080
CMD ["node", "server/dist/main.js"]
