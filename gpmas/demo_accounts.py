"""The embedded setup's demo accounts: (username, email, password).

Plain constants, importable without Django's settings: ``./dev up`` prints them from its own
process (``sandbox.devstack``), which never loads the project's settings.
"""

DEMO_ORGANIZER = ("organizer", "organizer@example.com", "organizer-demo-pass")
DEMO_ADMIN = ("admin", "admin@example.com", "admin-demo-pass")
