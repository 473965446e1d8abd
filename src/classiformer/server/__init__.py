"""The HTTP service: ``create_app(model, ServerSettings(...))`` and ``serve(...)``."""

from .app import create_app
from .settings import ServerSettings, check_bind, is_loopback

__all__ = ["ServerSettings", "check_bind", "create_app", "is_loopback"]
