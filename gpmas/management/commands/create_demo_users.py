"""Create (or refresh) the demo organizer and the admin of the embedded setup. Safe to re-run."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from events.models import OrganizerProfile
from gpmas.demo_accounts import DEMO_ADMIN, DEMO_ORGANIZER

# What guests read ("Olivia Park invites you"): organizers set it on their first login.
DISPLAY_NAMES = {"organizer": "Olivia Park", "admin": "GPMAS Admin"}


class Command(BaseCommand):
    help = "Create the demo organizer and admin accounts, or reset their passwords."

    def add_arguments(self, parser):
        parser.add_argument("--organizer-password", default=DEMO_ORGANIZER[2])
        parser.add_argument("--admin-password", default=DEMO_ADMIN[2])

    def handle(self, *args, organizer_password: str, admin_password: str, **options):
        if not organizer_password or not admin_password:
            raise CommandError("passwords must not be empty")
        with transaction.atomic():
            organizer = self._upsert(DEMO_ORGANIZER[:2], organizer_password, staff=False)
            admin = self._upsert(DEMO_ADMIN[:2], admin_password, staff=True)
        self.stdout.write(f"organizer: {organizer.username} / {organizer_password}")
        self.stdout.write(f"admin:     {admin.username} / {admin_password}")

    def _upsert(self, identity: tuple[str, str], password: str, *, staff: bool):
        username, email = identity
        user, _ = get_user_model().objects.get_or_create(
            username=username, defaults={"email": email}
        )
        user.email = email
        user.is_staff = staff
        user.is_superuser = staff
        user.is_active = True
        user.set_password(password)
        user.save()
        OrganizerProfile.objects.update_or_create(
            user=user, defaults={"display_name": DISPLAY_NAMES[username]}
        )
        return user
