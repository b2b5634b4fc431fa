"""The `openstack shoal ...` commands. Each parses its arguments, calls shoal.cli.shoalops
(or the generic finders of shoal.cli.resources) on the plugin's ApiClient, and hands the
rows to cliff, which prints them in any of the OpenStack client's formats."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from typing import Any

from osc_lib import exceptions
from osc_lib.command import command

from shoal.cli import shoalops
from shoal.cli.client import ApiClient, ApiRequestError
from shoal.cli.resources import NODE, find, listing
from shoal.errors import ShoalError

__all__ = [
    "DiffRevision",
    "ListEvent",
    "ListNode",
    "ListRevision",
    "RollbackRevision",
    "ShowNode",
    "ShowRevision",
    "TraceFlow",
]

Rows = tuple[Sequence[str], Iterable[Sequence[Any]]]
One = tuple[Sequence[str], Sequence[Any]]


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def _rows(items: list[dict[str, Any]], columns: Sequence[str]) -> Rows:
    return columns, [tuple(_cell(item.get(c)) for c in columns) for item in items]


def _one(item: dict[str, Any], columns: Sequence[str] | None = None) -> One:
    keys = list(columns or sorted(item))
    return keys, tuple(_cell(item.get(k)) for k in keys)


class _ShoalCommand(command.Command):
    """Shoal's errors become the OpenStack client's CommandError (one line, exit 1)."""

    @property
    def api(self) -> ApiClient:
        client: ApiClient = getattr(self.app.client_manager, "shoal")  # the plugin's  # noqa: B009
        return client

    def run(self, parsed_args: argparse.Namespace) -> int:
        try:
            return int(super().run(parsed_args))
        except ApiRequestError as exc:
            # As octaviaclient words its errors: the status and the request to look up.
            raise exceptions.CommandError(
                f"{exc.message} (HTTP {exc.status}) (Request-ID: {exc.request_id})"
            ) from None
        except ShoalError as exc:
            raise exceptions.CommandError(str(exc)) from None


def _lb_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("loadbalancer", metavar="<load_balancer>", help="name or id")


class ListRevision(_ShoalCommand, command.Lister):
    """List a load balancer's revisions, newest first."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = super().get_parser(prog_name)
        _lb_argument(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Rows:
        rows = shoalops.revisions(self.api, parsed_args.loadbalancer)
        return _rows(rows, shoalops.REVISION_COLUMNS)


class ShowRevision(_ShoalCommand, command.ShowOne):
    """Show one revision: who made it, why, and the whole configuration."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = super().get_parser(prog_name)
        _lb_argument(parser)
        parser.add_argument("number", metavar="<number>", type=int, help="revision number")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> One:
        _, rev = shoalops.revision(self.api, parsed_args.loadbalancer, parsed_args.number)
        return _one(rev, (*shoalops.REVISION_COLUMNS, "config"))


class DiffRevision(_ShoalCommand, command.Lister):
    """List what a revision changed, against its parent or --against."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = super().get_parser(prog_name)
        _lb_argument(parser)
        parser.add_argument("number", metavar="<number>", type=int, help="revision number")
        parser.add_argument("--against", metavar="<number>", type=int, help="compare with")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Rows:
        result = shoalops.revision_diff(
            self.api, parsed_args.loadbalancer, parsed_args.number, parsed_args.against
        )
        changes: list[dict[str, Any]] = result["changes"]
        columns = sorted({k for change in changes for k in change}) or ["op", "path"]
        return _rows(changes, columns)


class RollbackRevision(_ShoalCommand, command.ShowOne):
    """Make revision <number>'s configuration current again, as a new revision."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = super().get_parser(prog_name)
        _lb_argument(parser)
        parser.add_argument("number", metavar="<number>", type=int, help="revision number")
        parser.add_argument("--message", metavar="<text>", help="why (kept in the revision)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> One:
        _, rev = shoalops.rollback(
            self.api, parsed_args.loadbalancer, parsed_args.number, parsed_args.message
        )
        return _one(rev, shoalops.REVISION_COLUMNS)


class ListNode(_ShoalCommand, command.Lister):
    """List the data-plane nodes (admins)."""

    def take_action(self, parsed_args: argparse.Namespace) -> Rows:
        return _rows(listing(self.api, NODE), NODE.columns)


class ShowNode(_ShoalCommand, command.ShowOne):
    """Show one data-plane node (admins)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = super().get_parser(prog_name)
        parser.add_argument("node", metavar="<node>", help="name or id")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> One:
        return _one(find(self.api, NODE, parsed_args.node))


class ListEvent(_ShoalCommand, command.Lister):
    """List recent events (errors, deletions, node changes), newest first."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = super().get_parser(prog_name)
        parser.add_argument("--loadbalancer", metavar="<load_balancer>", help="of this one")
        parser.add_argument("--limit", metavar="<n>", type=int, default=50, help="at most")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Rows:
        if not 1 <= parsed_args.limit <= 1000:
            raise exceptions.CommandError("--limit must be from 1 to 1000")
        rows = shoalops.events(self.api, parsed_args.loadbalancer, parsed_args.limit)
        return _rows(rows, shoalops.EVENT_COLUMNS)


class TraceFlow(_ShoalCommand, command.ShowOne):
    """Show where a new flow to a load balancer goes, sending nothing."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = super().get_parser(prog_name)
        _lb_argument(parser)
        parser.add_argument("--source-ip", required=True, metavar="<address>")
        parser.add_argument("--source-port", required=True, type=int, metavar="<port>")
        parser.add_argument("--protocol-port", required=True, type=int, metavar="<port>")
        parser.add_argument("--protocol", default="TCP", choices=("TCP", "UDP", "tcp", "udp"))
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> One:
        return _one(
            shoalops.flow_trace(
                self.api,
                parsed_args.loadbalancer,
                parsed_args.source_ip,
                parsed_args.source_port,
                parsed_args.protocol_port,
                parsed_args.protocol,
            )
        )
