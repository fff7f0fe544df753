"""A faithful WeCom (企业微信) contacts simulator: the API, the admin console, callbacks.

``WeComSimulator`` is the entry point (``app.py``); the modules hold one concept each:
``state`` (directory), ``departments``/``users`` (rules), ``api`` (``/cgi-bin/``),
``guard`` (limits and faults), ``admin``/``admin_routes`` (console), ``pusher`` and
``changes`` (callbacks), ``export`` (Excel/CSV), ``tokens``, ``errors``.
"""

from .app import WeComSimulator
from .errors import ApiError
from .export import ExcelLayout, export_department_csv, export_user_csv, export_xlsx
from .pusher import CallbackConfig, CallbackPusher, Delivery

__all__ = [
    "ApiError",
    "CallbackConfig",
    "CallbackPusher",
    "Delivery",
    "ExcelLayout",
    "WeComSimulator",
    "export_department_csv",
    "export_user_csv",
    "export_xlsx",
]
