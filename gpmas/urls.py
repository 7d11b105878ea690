from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from gpmas.health import healthz

urlpatterns = [
    path("", include("events.urls")),
    path("", include("invitations.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("ops/", include("gpmas.ops_urls")),
    path("healthz", healthz, name="healthz"),
    # The providers' tracking webhooks only (anymail's inbound views are not mounted).
    path("webhooks/", include("delivery.webhooks.urls")),
]
