"""What a host kernel may refuse that Shoal's tests need, and one rule for what a test does then.

Some kernels built for sandboxes leave out seg6local (CONFIG_IPV6_SEG6_LWTUNNEL) or answer
live-frames test runs with EPERM. `make test` skips those tests there, saying why; the kernel VM
(`make test-kernel-quick`, Debian's 6.1) runs them with SHOAL_REQUIRE_KERNEL_FEATURES=1, where a
refusal fails instead, so the skip cannot hide a test that never runs anywhere."""

from __future__ import annotations

import os

import pytest

from shoal import netns

REQUIRE = "SHOAL_REQUIRE_KERNEL_FEATURES"


def skip_if_refused(refusal: str | None) -> None:
    if refusal is None:
        return
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{refusal}, and {REQUIRE}=1 says this kernel must have it")
    pytest.skip(f"{refusal} (make test-kernel-quick runs this on 6.1)")


def seg6local_refusal() -> str | None:
    """Why this kernel cannot strip SRv6 on a backend with seg6local, or None."""
    ns = f"shoal-seg6probe-{os.getpid()}"
    netns.add(ns)
    try:
        netns.run(["ip", "link", "set", "lo", "up"], ns)
        proc = netns.run(
            ["ip", "-6", "route", "add", "fd77:ffff::1/128", "encap", "seg6local", "action",
             "End", "dev", "lo"], ns, check=False,
        )  # fmt: skip
    finally:
        netns.delete(ns)
    if proc.returncode == 0:
        return None
    return f"this kernel ({os.uname().release}) has no seg6local: {proc.stderr.strip()}"
