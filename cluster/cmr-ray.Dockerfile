# The image for Kubernetes (cluster/kuberay.yaml): Ray's GPU image plus this project,
# installed at the pinned versions (boto3 for the MLflow server's S3 artifacts).  Build from the repository root:
#
#   docker build -f cluster/cmr-ray.Dockerfile -t REGISTRY/cmr-ray:0.1.0 .
#   docker push REGISTRY/cmr-ray:0.1.0
FROM rayproject/ray:2.60.0-py311-gpu
WORKDIR /home/ray/cmr-ray
COPY --chown=ray:users pyproject.toml constraints.txt README.md ./
COPY --chown=ray:users cmr_ray ./cmr_ray
COPY --chown=ray:users experiments ./experiments
RUN pip install --no-cache-dir torch==2.13.0 -c constraints.txt -e . boto3 \
 && python -c "import cmr_ray, ray, torch; print('cmr-ray', cmr_ray.__version__, 'ray', ray.__version__, 'torch', torch.__version__)"
