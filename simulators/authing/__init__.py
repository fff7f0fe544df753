"""Fake Authing v3 management API + webhooks (see ``app.AuthingSimulator``)."""

from .app import AuthingSimulator
from .errors import ApiError

__all__ = ["ApiError", "AuthingSimulator"]
