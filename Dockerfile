FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gpmas gpmas
COPY events events
COPY invitations invitations
COPY delivery delivery
COPY reliability reliability
RUN pip install --no-cache-dir .
COPY . .
RUN DEBUG=1 python manage.py collectstatic --noinput
RUN useradd --system gpmas
USER gpmas
EXPOSE 8000
