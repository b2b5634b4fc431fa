"""The web console under /ui: server-rendered pages over the controller's own API."""

from shoal.controller.console.routes import install, router

__all__ = ["install", "router"]
