# The mentorflow image: one image, three commands (compose runs each):
#   mentorflow setup   namespace, search attributes, database migrations (one-shot)
#   mentorflow worker  workflows and activities (scale horizontally)
#   mentorflow web     the pages behind the emails, /health, the codec endpoint
# It installs the project exactly as README's production section does:
# `pip install .` from pyproject.toml, nothing else.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --create-home --home-dir /home/mentorflow mentorflow
WORKDIR /app

COPY pyproject.toml README.md ./
COPY mentorflow ./mentorflow
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
RUN pip install .
# The workflow modules' bytecode, written now: the image is read-only to the worker
# (PYTHONDONTWRITEBYTECODE above), whose sandbox loads them again for every new
# workflow run and would compile them from source each time (worker/bytecode.py).
RUN cd / && python -c "from worker.bytecode import compile_workflow_modules as c; raise SystemExit(not c())"

COPY definitions ./definitions

USER mentorflow
ENV MENTORFLOW_WEB_HOST=0.0.0.0 \
    MENTORFLOW_LOG_FORMAT=json \
    MENTORFLOW_DATA_DIR=/home/mentorflow/.mentorflow
EXPOSE 8000 9464
ENTRYPOINT ["mentorflow"]
CMD ["worker"]
