# wecom-sync: one image for serve, worker and the CLI.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY receiver ./receiver
COPY sync_core ./sync_core
COPY simulators ./simulators
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 wecomsync
COPY --from=build /install /usr/local
WORKDIR /data
RUN chown wecomsync:wecomsync /data
USER wecomsync
ENV WECOM_SYNC_HOST=0.0.0.0 \
    WECOM_SYNC_PORT=8080 \
    WECOM_SYNC_DATABASE_URL=sqlite:////data/wecom-sync.db \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD python -c "import os,sys,urllib.request; port=os.environ.get('WECOM_SYNC_PORT','8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["wecom-sync"]
CMD ["serve"]
