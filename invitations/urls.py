from django.urls import path

from invitations import organizer_views, unsubscribe_views, views

EVENT = "events/<int:event_id>/"
INVITATION = EVENT + "invitations/<int:invitation_id>/"

urlpatterns = [
    path(EVENT + "invite/", organizer_views.event_invite, name="event_invite"),
    path(EVENT + "guests.csv", organizer_views.guests_csv, name="event_guests_csv"),
    path(INVITATION + "resend/", organizer_views.invitation_resend, name="invitation_resend"),
    path(INVITATION + "revoke/", organizer_views.invitation_revoke, name="invitation_revoke"),
    path(INVITATION + "undo/", organizer_views.invitation_unrevoke, name="invitation_unrevoke"),
    # The guest's link: the token is the only credential, so these need no login.
    path("i/<str:token>/", views.guest_invitation, name="guest_invitation"),
    path("i/<str:token>/event.ics", views.guest_calendar, name="guest_calendar"),
    path("i/<str:token>/accept/", views.guest_accept, name="guest_accept"),
    path("i/<str:token>/decline/", views.guest_decline, name="guest_decline"),
    # One-click unsubscribe (RFC 8058): the signed token names the organizer and the address.
    path("u/<str:token>/", unsubscribe_views.guest_unsubscribe, name="guest_unsubscribe"),
]
