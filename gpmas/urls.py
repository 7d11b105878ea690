from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic.base import RedirectView

from gpmas.favicon import favicon_svg
from gpmas.health import healthz

urlpatterns = [
    path("", include("events.urls")),
    path("", include("invitations.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("ops/", include("gpmas.ops_urls")),
    path("healthz", healthz, name="healthz"),
    path("favicon.svg", favicon_svg, name="favicon"),
    path("favicon.ico", RedirectView.as_view(url="/favicon.svg", permanent=True)),
    # The providers' tracking webhooks only (anymail's inbound views are not mounted).
    path("webhooks/", include("delivery.webhooks.urls")),
]
