#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpmas.settings")
    # manage.py is the developer's door: development defaults unless DEBUG is set. Production
    # processes (gunicorn, Celery) start through wsgi.py and celery.py, where DEBUG defaults to
    # off and a missing SECRET_KEY stops them; production sets DEBUG=0 for its commands too.
    os.environ.setdefault("DEBUG", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
