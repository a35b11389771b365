from django.urls import path

from . import views

urlpatterns = [
    # the same path as the portal's API, cached for SEED_CACHE_SECONDS
    path("api/rpc/listings", views.listings),
    # the same view without the page cache
    path("api/rpc/listings_uncached", views.listings_uncached),
]
