# LiteLLM's own proxy image with the litellm-mlflow callback installed into it.
#   make dist                                   # builds dist/litellm_mlflow-<version>-py3-none-any.whl
#   docker build -t litellm-proxy-mlflow .      # --build-arg LITELLM_IMAGE=ghcr.io/berriai/litellm:<tag> to pin
#   docker run -p 4000:4000 -v $PWD/config.yaml:/app/config.yaml \
#     -e LITELLM_MLFLOW_QUEUE_URL=... -e AWS_REGION=... litellm-proxy-mlflow --config /app/config.yaml
# The base image's entrypoint and command are kept: this only adds the wheel (and boto3) to its Python.
ARG LITELLM_IMAGE=ghcr.io/berriai/litellm:main-stable
FROM ${LITELLM_IMAGE}

COPY dist/litellm_mlflow-*-py3-none-any.whl /tmp/litellm-mlflow/
# [callback] adds boto3; the image's own litellm already satisfies the litellm requirement, so it is left as it is.
RUN pip install --no-cache-dir "$(ls /tmp/litellm-mlflow/litellm_mlflow-*.whl)[callback]" \
    && rm -rf /tmp/litellm-mlflow \
    && python -c "import litellm_mlflow.callback"
