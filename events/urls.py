from django.urls import path

from events import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("events/new/", views.event_new, name="event_new"),
    path("events/<int:event_id>/", views.event_detail, name="event_detail"),
    path("events/<int:event_id>/live/", views.event_live, name="event_live"),
    path("events/<int:event_id>/edit/", views.event_edit, name="event_edit"),
    path("events/<int:event_id>/cancel/", views.event_cancel, name="event_cancel"),
    path("events/<int:event_id>/delete/", views.event_delete, name="event_delete"),
]
