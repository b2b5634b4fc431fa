"""Harness only: a controller for tempest (noop provider by default, Keystone users through
keystone_shim). python -m tests.tempest.run_controller <state_dir> <port> <keystone> <token>"""

from __future__ import annotations

import sys

import uvicorn

from shoal.controller.app import create_app
from shoal.controller.settings import load_settings

from .keystone_shim import KeystoneShim


def main() -> None:
    state_dir, port, keystone, token = sys.argv[1:5]
    extra = {"default_provider": "noop"} if "--noop" in sys.argv else {}
    settings = load_settings(
        state_dir=state_dir,
        listen=f"127.0.0.1:{port}",
        pending_timeout=600,
        enabled_providers=["shoal", "noop"],  # off by default; tempest tests through it
        **extra,
    )
    app = create_app(settings, authenticator=KeystoneShim(keystone, token))
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")


if __name__ == "__main__":
    main()
