# One image for every Tickwork process: the command picks the role
# (`tickwork migrate`, `tickwork api` or `tickwork daemon`).

# Stage 1 builds the web frontend. Only web/dist leaves this stage, so Node
# and node_modules never reach the final image.
FROM node:20 AS web
WORKDIR /app/web

# The manifests come first so that `npm ci` stays cached until they change.
COPY web/package.json web/package-lock.json ./
RUN npm ci

COPY web/ ./
RUN node build.mjs


# Stage 2 is what runs.
FROM python:3.11-slim AS app

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TICKWORK_HOST=0.0.0.0 \
    TICKWORK_PORT=8000 \
    TICKWORK_WEB_DIR=/app/web/dist
# TICKWORK_HOST: inside a container the loopback default would be unreachable
# from outside it, so the image listens on all interfaces.

# A fixed numeric id lets orchestrators that check runAsNonRoot verify the user
# without reading /etc/passwd.
RUN groupadd --system --gid 10001 tickwork \
    && useradd --system --uid 10001 --gid tickwork --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin tickwork

# The whole project goes to /app (trimmed by .dockerignore); the installed
# package finds the built page through TICKWORK_WEB_DIR.
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir .

COPY --from=web /app/web/dist /app/web/dist

# Everything above stays owned by root: the service can read its code and
# assets but not rewrite them.
USER 10001:10001

EXPOSE 8000
# Exec form, so tickwork is PID 1 and receives SIGTERM from `docker stop`.
CMD ["tickwork", "api"]
