# hb-medic: the agent beside hummingbot-api.
#   docker build -t hb-medic .
# BASE defaults to the public slim Python image; the tests build FROM a local base.
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
RUN python3 -m venv /opt/hb-medic
COPY pyproject.toml README.md /src/
COPY agent /src/agent
COPY rules /src/rules
RUN /opt/hb-medic/bin/pip install --no-cache-dir --disable-pip-version-check /src \
 && find /opt/hb-medic -name '__pycache__' -prune -exec rm -rf {} +

FROM ${BASE}
# A non-root user; it reaches the Docker socket through the socket's group, which
# compose adds at run time (group_add: the gid of /var/run/docker.sock on the host).
RUN (getent group medic || groupadd --system --gid 10001 medic) \
 && useradd --system --uid 10001 --gid medic --home-dir /data --shell /usr/sbin/nologin medic \
 && mkdir -p /data && chown medic:medic /data \
 && find / -xdev -perm /6000 -type f -exec chmod a-s {} +
# No setuid or setgid program is left (su, mount, passwd...): nothing in the container can gain
# privileges, whatever runs in it (compose adds no-new-privileges and drops every capability too).
COPY --from=build /opt/hb-medic /opt/hb-medic
# The shipped rules are inside the package; your own go in a folder named by MEDIC_RULES_DIR.
ENV PATH=/opt/hb-medic/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MEDIC_STATE_DB=/data/state.db \
    MEDIC_HTTP_ADDR=0.0.0.0:9108
VOLUME ["/data"]
USER medic
WORKDIR /data
EXPOSE 9108 8001
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["hb-medic", "health"]
# Exec form: hb-medic is PID 1 and handles SIGTERM itself (clean stop in well under 3 s).
ENTRYPOINT ["hb-medic"]
CMD ["run"]
