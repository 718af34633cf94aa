# A real Hummingbot bot, laid out like the official hummingbot/hummingbot image: /home/hummingbot with
# the compiled package beside bin/ (root_path() is the package's parent, so conf/, logs/ and data/
# resolve there), and the same shell-form command through bash, so stderr before logging starts
# lands only in logs/errors.log and bash is PID 1.
ARG PYTHON=medic-real/python
FROM ${PYTHON}
# The management console imports ptpython.
RUN /opt/uv/bin/uv pip install -q "ptpython==3.0.32"
ENV INSTALLATION_TYPE=docker
# cp -a keeps the sources' times, so the compiled bytecode beside them stays valid. The entry point
# is the source's bin/hummingbot_quickstart.py as the wheel installed it, with the source's first
# line (`#!/usr/bin/env python`, the activated venv's python) put back.
RUN mkdir -p /home/hummingbot/conf/connectors /home/hummingbot/conf/strategies \
      /home/hummingbot/conf/controllers /home/hummingbot/conf/scripts /home/hummingbot/logs \
      /home/hummingbot/data /home/hummingbot/certs /home/hummingbot/scripts /home/hummingbot/controllers \
    && cp -a /opt/venv/lib/python3.13/site-packages/hummingbot /home/hummingbot/hummingbot \
    && mkdir /home/hummingbot/bin \
    && sed '1s|^#!.*|#!/usr/bin/env python|' /opt/venv/bin/hummingbot_quickstart.py \
       > /home/hummingbot/bin/hummingbot_quickstart.py
COPY vendor/hummingbot-bin/bin/ /home/hummingbot/bin/
RUN chmod 755 /home/hummingbot/bin/*.py
WORKDIR /home/hummingbot
SHELL ["/bin/bash", "-lc"]
CMD . /opt/venv/bin/activate && ./bin/hummingbot_quickstart.py 2>> ./logs/errors.log
