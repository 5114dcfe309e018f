# WeakSeg service image: CUDA runtime + onnxruntime-gpu (falls back to CPU where no GPU is given).
# Build: docker build -t weakseg .   Run: docker run --gpus all -p 50051:50051 -p 9090:9090 weakseg

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY wsss ./wsss
COPY training ./training
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir .

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home weakseg
COPY --from=build /opt/venv /opt/venv
COPY --chown=10001:10001 model_repo /models
ENV PATH=/opt/venv/bin:$PATH \
    WSSS_MODEL_REPO=/models \
    WSSS_PORT=50051 \
    WSSS_METRICS_PORT=9090
USER 10001:10001
EXPOSE 50051 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["python3", "-m", "service.healthcheck"]
ENTRYPOINT ["python3", "-m", "service"]
