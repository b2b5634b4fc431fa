"""Octavia's default roles, as Shoal maps a Keystone token's role list."""

from __future__ import annotations

import pytest

from shoal.controller.rbac import Grant, grant_for


@pytest.mark.parametrize(
    ("roles", "system", "expected"),
    [
        (["admin"], False, Grant("admin", True)),
        (["load-balancer_admin"], False, Grant("admin", True)),
        (["Admin"], False, Grant("admin", True)),  # role names compare case-insensitively
        (["member", "reader"], False, Grant("member", False)),  # Keystone's implied roles
        (["load-balancer_member"], False, Grant("member", False)),
        (["reader"], False, Grant("reader", False)),
        (["load-balancer_observer"], False, Grant("reader", False)),
        (["load-balancer_global_observer"], False, Grant(None, True)),
        (["load-balancer_member", "load-balancer_global_observer"], False, Grant("member", True)),
        (["reader"], True, Grant(None, True)),  # a system reader reads everything
        (["member"], True, Grant(None, False)),  # but is no member of any project
        (["admin"], True, Grant("admin", True)),
        (["creator", "_member_"], False, Grant(None, False)),
        ([], False, Grant(None, False)),
    ],
)
def test_roles_map_as_octavias_policy(roles, system, expected):
    assert grant_for(roles, system_scope=system) == expected
