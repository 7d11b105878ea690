from django.utils.functional import SimpleLazyObject

from gpmas.system import system_state


def system_status(request) -> dict:
    """``system_state`` for the banner (organizers and staff) and the admin header.

    Lazy: computed only by templates that show it, and only for signed-in users; guests on an
    invitation page do not need to know.
    """
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    staff = request.user.is_staff
    return {"system_state": SimpleLazyObject(lambda: system_state(staff=staff))}
