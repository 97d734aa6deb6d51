# OpenArc: OpenAI-compatible LLM serving on OpenVINO GenAI.
#   docker build -t openarc .
#   docker run -p 8000:8000 -v "$PWD/models:/models:ro" -v openarc-cache:/cache openarc
# Serves /config/openarc.yaml (configs/docker.yaml); mount your own there, or set OPENARC_CONFIG.
# Intel GPUs: add `--device /dev/dri --group-add $(stat -c %g /dev/dri/render*)` and a GPU runtime in the image.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY openarc ./openarc
RUN python -m venv /opt/openarc \
    && /opt/openarc/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/openarc/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 openarc \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/openarc openarc \
    && mkdir -p /models /cache /config \
    && chown openarc:openarc /cache
COPY --from=build /opt/openarc /opt/openarc
COPY configs/docker.yaml /config/openarc.yaml
ENV PATH=/opt/openarc/bin:$PATH \
    OPENARC_CONFIG=/config/openarc.yaml \
    PYTHONUNBUFFERED=1
USER 10001:10001
VOLUME ["/models", "/cache"]
EXPOSE 8000
# Model loading can take minutes for large models: /health answers while they load, /ready once loaded.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
# SIGTERM drains in-flight requests (server.drain_timeout); give `docker stop -t` at least that long.
STOPSIGNAL SIGTERM
ENTRYPOINT ["openarc", "serve"]
