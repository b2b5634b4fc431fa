#!/usr/bin/env bash
# Fails with one readable line when this machine cannot run Shoal's data plane.
set -euo pipefail
fail() { echo "shoal: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root (BPF, XDP and network namespaces need it); try: sudo make ${1:-test}"
[ -e /proc/sys/kernel/unprivileged_bpf_disabled ] || fail "this kernel has no BPF syscall (CONFIG_BPF_SYSCALL)"
[ -e /proc/sys/net/core/bpf_jit_enable ] || fail "this kernel has no BPF JIT (CONFIG_BPF_JIT); XDP would be too slow"
[ -d /sys/class/net ] || fail "no /sys/class/net: is sysfs mounted?"
grep -qw bpf /proc/filesystems || fail "this kernel has no bpffs (CONFIG_BPF_SYSCALL)"
