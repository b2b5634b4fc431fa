"""Keystone's WSGI application for gunicorn. Keystone's oslo.config parses sys.argv, which
under gunicorn holds gunicorn's own options: hide them before it loads."""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402

__all__ = ["application"]
