FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gpmas gpmas
COPY events events
COPY invitations invitations
COPY delivery delivery
COPY reliability reliability
# The base package only: not the test, bench or sandbox extras (the provider emulators are a
# development tool; without moto and aiosmtpd the sandbox app is simply not installed).
RUN pip install --no-cache-dir .
COPY . .
RUN DEBUG=1 python manage.py collectstatic --noinput
RUN useradd --system gpmas
USER gpmas
EXPOSE 8000
