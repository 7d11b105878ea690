from django.utils.functional import SimpleLazyObject

from gpmas.notices import notice_for
from gpmas.system import system_state


def system_status(request) -> dict:
    """The banner (``email_notice``, worded for the reader: ``gpmas.notices``) and, for the admin
    header, ``system_state``.

    Lazy: computed only by templates that show them, and only for signed-in users; guests on an
    invitation page do not need to know.
    """
    user = getattr(request, "user", None)
    if not user or not user.is_authenticated:
        return {}
    return {
        "system_state": SimpleLazyObject(system_state),
        "email_notice": SimpleLazyObject(lambda: notice_for(user) or ""),
    }
