# The Python shared by the real hummingbot-api and the real bots: Debian trixie's python3 (3.13) in
# a venv at /opt/venv, the pinned lock installed with --no-deps (the set is complete, and a resolver
# would refuse the coincurve override), and hummingbot built from its source distribution (there is
# no cp313 wheel). Upstream uses conda with Python 3.12, which cannot be reached here.
ARG BASE=medic-real/trixie-base
FROM ${BASE}
ARG UV=uv==0.13.8
ARG HUMMINGBOT=hummingbot==20260922
# uv lives beside the venv, not in it: it installs the 167 pins far faster than pip.
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install -q --no-cache-dir "$UV" \
    && python3 -m venv /opt/venv
# Bytecode compiled at install, as conda does upstream: the image sets PYTHONDONTWRITEBYTECODE, so
# without it every start of hummingbot-api or a bot would compile its imports again (minutes here).
ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv UV_NO_CACHE=1 UV_PYTHON=/opt/venv/bin/python \
    UV_COMPILE_BYTECODE=1
RUN /opt/uv/bin/uv pip install -q setuptools wheel numpy==2.2.6 "cython>=3.0.12"
COPY vendor/deps/lock313.txt /tmp/lock313.txt
RUN /opt/uv/bin/uv pip install -q --no-deps -r /tmp/lock313.txt && rm /tmp/lock313.txt
# pip wheel: Cython translates the .pyx once (for the metadata) and the build reuses it. setup.py
# compiles in parallel only for a bare `setup.py build_ext`, so the user config gives it -j.
RUN printf '[build_ext]\nparallel = %s\n' "$(nproc)" > /root/.pydistutils.cfg \
    && WITHOUT_CYTHON_OPTIMIZATIONS=1 pip wheel -q --no-cache-dir --no-deps --no-build-isolation \
       -w /tmp/dist "$HUMMINGBOT" \
    && /opt/uv/bin/uv pip install -q --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist /root/.pydistutils.cfg
