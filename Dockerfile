# One image for every role: the command picks it.
#   docker run IMAGE reconciler | worker | flower | ghsim | config --reference
# Build: docker build -t runner-provisioner:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim

# Builder: installs the project and its dependencies into a virtualenv. Every dependency ships
# binary wheels for CPython 3.11 on Linux, so no compiler is needed here either.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Metadata first, so a code change does not invalidate the dependency layer.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY provisioner ./provisioner
COPY workers ./workers
COPY k8s/crd-runnerscaleset.yaml ./k8s/crd-runnerscaleset.yaml
RUN pip install --no-deps . && provisioner --help > /dev/null

# Final: the virtualenv on a clean slim base, run as an unprivileged user.
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 provisioner \
    && useradd --system --uid 10001 --gid provisioner --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin provisioner
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
WORKDIR /tmp
USER 10001:10001
# /metrics, /livez and /readyz of the reconciler and workers (--metrics-port).
EXPOSE 9100
# Live means the process's main loop still beats (see provisioner/health.py); with the endpoint
# turned off (port 0) there is nothing to ask, so the check passes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, sys, urllib.request as r; p = os.environ.get('PROVISIONER_METRICS_PORT', '9100'); p == '0' and sys.exit(0); r.urlopen(f'http://127.0.0.1:{p}/livez', timeout=4)"
ENTRYPOINT ["provisioner"]
CMD ["--help"]
