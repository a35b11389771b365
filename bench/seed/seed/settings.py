"""The seed stack: the search API as a Django + Django REST framework app
with its page cache on Redis (django-redis), the way a team would build it
without housing_cache.  The benchmark (bench/hcbench/edge.py) runs it under
gunicorn against its own PostgreSQL and Redis.

Everything comes from the environment, set by the benchmark at run time;
nothing secret is committed:

  SEED_SECRET_KEY       Django's SECRET_KEY (required; the bench makes a
                        random one per run)
  SEED_PGHOST, SEED_PGPORT, SEED_PGDATABASE, SEED_PGUSER, SEED_PGPASSWORD
  SEED_REDIS_URL        the page cache's Redis, e.g. redis://127.0.0.1:6379/1
  SEED_CACHE_SECONDS    cache_page's timeout [5]
"""

import os

SECRET_KEY = os.environ["SEED_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
]

# An API-only app: no sessions, CSRF or templates.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "seed.urls"
WSGI_APPLICATION = "seed.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("SEED_PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("SEED_PGPORT", "5432"),
        "NAME": os.environ.get("SEED_PGDATABASE", "housing"),
        "USER": os.environ.get("SEED_PGUSER", "bench_seed"),
        "PASSWORD": os.environ.get("SEED_PGPASSWORD", ""),
        # persistent connections, as production settings have them
        "CONN_MAX_AGE": 600,
    }
}

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ.get("SEED_REDIS_URL", "redis://127.0.0.1:6379/1"),
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}
CACHE_SECONDS = int(os.environ.get("SEED_CACHE_SECONDS", "5"))

# Anonymous, public reads: no authentication, JSON only.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
