"""A small synchronous client for the controller's REST API, and where the CLI finds its URL
and token: --url/--token, else $SHOAL_URL/$SHOAL_TOKEN, else the config file
($SHOAL_CLI_CONFIG, else ~/.config/shoal/cli.yaml with keys url, token, ca_bundle and
insecure_http). An https:// controller is verified against the CA bundle (--ca-bundle,
$SHOAL_CA_BUNDLE, ca_bundle; else the system's); http:// only to loopback unless
insecure_http."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from shoal.cli.files import read_yaml
from shoal.errors import ConfigError, ShoalError
from shoal.transport import verify_for

__all__ = [
    "DEFAULT_URL",
    "ApiClient",
    "ApiRequestError",
    "ApiResponse",
    "ClientSettings",
    "ControllerUnreachableError",
    "client_settings",
]

DEFAULT_URL = "http://127.0.0.1:9876"
DEFAULT_TIMEOUT = 30.0


class ApiRequestError(ShoalError):
    """The controller refused a request; str() is its faultstring, on one line."""

    def __init__(self, status: int, message: str, request_id: str | None = None) -> None:
        self.status = status
        self.message = " ".join(message.split()) or f"HTTP {status}"
        self.request_id = request_id  # the controller's x-openstack-request-id
        super().__init__(self.message)


class ControllerUnreachableError(ShoalError):
    """No HTTP answer at all: refused, timed out, DNS, TLS."""


@dataclass(frozen=True)
class ClientSettings:
    url: str
    token: str
    timeout: float = DEFAULT_TIMEOUT
    ca_bundle: str | None = None
    insecure_http: bool = False


def config_path() -> Path:
    return Path(os.environ.get("SHOAL_CLI_CONFIG") or Path.home() / ".config/shoal/cli.yaml")


def _config_file() -> dict[str, Any]:
    path = config_path()
    data = read_yaml(path, missing_ok=True)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with keys url and token")
    return data


def client_settings(
    url: str | None = None, token: str | None = None, ca_bundle: str | None = None
) -> ClientSettings:
    """Flags win over the environment, which wins over the config file."""
    file = _config_file()
    ca_bundle = ca_bundle or os.environ.get("SHOAL_CA_BUNDLE") or file.get("ca_bundle")
    insecure = os.environ.get("SHOAL_INSECURE_HTTP", "") == "1" or file.get("insecure_http")
    url = url or os.environ.get("SHOAL_URL") or file.get("url") or DEFAULT_URL
    token = token or os.environ.get("SHOAL_TOKEN") or file.get("token")
    if not token:
        raise ConfigError(
            f"no API token: pass --token, set SHOAL_TOKEN, or put 'token: ...' in {config_path()}"
        )
    try:
        timeout = float(file.get("timeout", DEFAULT_TIMEOUT))
    except (TypeError, ValueError):
        raise ConfigError(f"{config_path()}: timeout must be a number of seconds") from None
    return ClientSettings(
        str(url).rstrip("/"),
        str(token),
        timeout,
        str(ca_bundle) if ca_bundle else None,
        insecure is True or insecure == "1",
    )


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any
    headers: httpx.Headers


def _fault(response: httpx.Response) -> str:
    """The API's faultstring, or the start of whatever else answered (a proxy, say)."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, dict) and body.get("faultstring"):
        return str(body["faultstring"])
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return f"HTTP {response.status_code}: {str(body)[:200]}"


class ApiClient:
    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        ca_bundle: str | None = None,
        insecure_http: bool = False,
    ) -> None:
        self.url = url
        self._http = httpx.Client(
            base_url=url,
            headers={"X-Auth-Token": token},
            timeout=timeout,
            verify=verify_for(url, ca_bundle, insecure_http),
        )

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> ApiClient:
        return cls(
            settings.url,
            settings.token,
            settings.timeout,
            ca_bundle=settings.ca_bundle,
            insecure_http=settings.insecure_http,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiResponse:
        try:
            r = self._http.request(method, path, json=body, params=params, headers=headers)
        except httpx.TimeoutException:
            raise ControllerUnreachableError(
                f"cannot reach the controller at {self.url}: no answer within "
                f"{self._http.timeout.read:g} s"
            ) from None
        except httpx.HTTPError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ControllerUnreachableError(
                f"cannot reach the controller at {self.url}: {reason}"
            ) from None
        if r.status_code >= 400:
            raise ApiRequestError(r.status_code, _fault(r), r.headers.get("x-openstack-request-id"))
        if not r.content:
            return ApiResponse(r.status_code, None, r.headers)
        try:
            return ApiResponse(r.status_code, r.json(), r.headers)
        except ValueError:
            raise ApiRequestError(
                r.status_code, f"{self.url} answered {method} {path} with something not JSON"
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean or None).body

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body).body

    def put(self, path: str, body: Any = None) -> Any:
        return self.request("PUT", path, body).body

    def delete(self, path: str, **params: Any) -> None:
        clean = {k: v for k, v in params.items() if v is not None}
        self.request("DELETE", path, params=clean or None)
