"""The OpenStack client's plugin interface (osc-lib): the `shoal` API's name, its versions,
and make_client, which gives the commands Shoal's own ApiClient aimed at the catalog's
`load-balancer` endpoint with the user's Keystone token."""

from __future__ import annotations

import argparse
import os
from typing import Any

from shoal.cli.client import DEFAULT_TIMEOUT, ApiClient

__all__ = [
    "API_NAME",
    "API_VERSIONS",
    "API_VERSION_OPTION",
    "build_option_parser",
    "make_client",
]

API_NAME = "shoal"
API_VERSION_OPTION = "os_shoal_api_version"
API_VERSIONS = {"1": "shoal.cli.client.ApiClient"}
SERVICE_TYPE = "load-balancer"  # Shoal's own API lives beside Octavia's, under /v2/shoal


def _endpoint(instance: Any) -> str:
    """--os-endpoint (e.g. with --os-auth-type none), else the catalog's."""
    explicit = getattr(instance, "_cli_options", None)
    configured = explicit.config.get("endpoint") if explicit is not None else None
    if configured:
        return str(configured)
    endpoint = instance.get_endpoint_for_service_type(
        SERVICE_TYPE, region_name=instance.region_name, interface=instance.interface
    )
    return str(endpoint)


def _root(url: str) -> str:
    """The controller's root: catalogs may name .../v2 (openstacksdk's discovered form)."""
    url = url.rstrip("/")
    for suffix in ("/v2.0", "/v2"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def make_client(instance: Any) -> ApiClient:
    token = instance.session.get_token() if instance.auth_plugin_name != "none" else "notused"
    ca = instance.cacert if isinstance(instance.cacert, str) else None
    return ApiClient(
        _root(_endpoint(instance)),
        str(token),
        DEFAULT_TIMEOUT,
        ca_bundle=ca or os.environ.get("SHOAL_CA_BUNDLE"),
        insecure_http=os.environ.get("SHOAL_INSECURE_HTTP", "") == "1",
    )


def build_option_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--os-shoal-api-version",
        metavar="<shoal-api-version>",
        default=os.environ.get("OS_SHOAL_API_VERSION", "1"),
        help="Shoal API version (default: 1)",
    )
    return parser
