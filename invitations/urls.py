from django.urls import path

from invitations import views

EVENT = "events/<int:event_id>/"
INVITATION = EVENT + "invitations/<int:invitation_id>/"

urlpatterns = [
    path(EVENT + "invite/", views.event_invite, name="event_invite"),
    path(EVENT + "guests.csv", views.guests_csv, name="event_guests_csv"),
    path(INVITATION + "resend/", views.invitation_resend, name="invitation_resend"),
    path(INVITATION + "revoke/", views.invitation_revoke, name="invitation_revoke"),
    # The guest's link: the token is the only credential, so these need no login.
    path("i/<str:token>/", views.guest_invitation, name="guest_invitation"),
    path("i/<str:token>/accept/", views.guest_accept, name="guest_accept"),
    path("i/<str:token>/decline/", views.guest_decline, name="guest_decline"),
]
