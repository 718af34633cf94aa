# The real hummingbot-api of one generation, in upstream's runtime layout (its Dockerfile's second
# stage) on the shared Python image instead of conda.
ARG PYTHON=medic-real/python
FROM ${PYTHON}
# A local tar archive given to ADD is unpacked.
ARG ARCHIVE
ADD vendor/hummingbot-api/${ARCHIVE} /tmp/src/
RUN mkdir -p /hummingbot-api/bots && cd /tmp/src/hummingbot-api \
    && cp -r main.py config.py deps.py models routers services utils database /hummingbot-api/ \
    && cp -r bots/controllers bots/scripts /hummingbot-api/bots/ \
    && rm -rf /tmp/src
WORKDIR /hummingbot-api
RUN mkdir -p bots/instances bots/conf bots/credentials bots/data bots/archived
EXPOSE 8000
ENTRYPOINT ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000"]
