#!/usr/bin/env bash
# Runs a command inside a VM booted with Debian's own kernel of another series (6.1 is
# Debian 12's), to check that the BPF programs load and behave there. The VM is qemu under
# software emulation (nested KVM hangs on the lab machines); it mounts this machine's / over 9p
# read-only, the kernel package's modules on /lib/modules, and tmpfs on /tmp and /run (a checkout
# under /tmp is mounted back at its own path), so the checkout and its venv run unchanged. Timings inside mean nothing; verdicts and verifier
# acceptance do.
#
#   scripts/kernel-vm.sh 6.1 -- .venv/bin/pytest -q tests/bpf
#
# Environment: KERNEL_PKG (a linux-image package; default the newest Debian amd64 image of the
# series), SHOAL_KERNEL_CACHE (where kernels and initramfs are kept; never under /tmp, which the
# VM hides), VM_MEM (MiB, 2048), VM_SMP (1), VM_TIMEOUT (seconds, 2400).
# Exit status: the command's, or 124 when the VM timed out, 125 when it never reported.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)

series=${1:?usage: kernel-vm.sh SERIES -- COMMAND...}
shift
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "kernel-vm: no command given" >&2; exit 2; }

cache=${SHOAL_KERNEL_CACHE:-/var/cache/shoal/kernels}
mem=${VM_MEM:-2048}
smp=${VM_SMP:-1}
timeout_s=${VM_TIMEOUT:-2400}

need=()
for p in qemu-system-x86 busybox-static kmod cpio; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "kernel-vm: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# The newest generic amd64 image of the series (not -rt, -cloud or -unsigned).
if [ -z "${KERNEL_PKG:-}" ]; then
  pattern="^linux-image-${series//./\\.}\.[0-9][^ ]*-amd64\$"
  KERNEL_PKG=$(apt-cache search --names-only "$pattern" | awk '{print $1}' \
    | grep -Ev -- '-(rt|cloud)-amd64$' | sort -V | tail -1 || true)
  if [ -z "$KERNEL_PKG" ]; then
    apt-get update -q >/dev/null
    KERNEL_PKG=$(apt-cache search --names-only "$pattern" | awk '{print $1}' \
      | grep -Ev -- '-(rt|cloud)-amd64$' | sort -V | tail -1 || true)
  fi
  [ -n "$KERNEL_PKG" ] || { echo "kernel-vm: no Debian kernel package for series $series" >&2; exit 2; }
fi
kdir=$cache/$KERNEL_PKG
if ! ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
  echo "kernel-vm: fetching $KERNEL_PKG"
  mkdir -p "$kdir.part"
  (cd "$kdir.part" && apt-get download -q "$KERNEL_PKG" >/dev/null 2>&1 \
     && dpkg -x ./*.deb root && rm -f ./*.deb)
  rm -rf "$kdir" && mv "$kdir.part/root" "$kdir" && rm -rf "$kdir.part"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -1)
kver=${vmlinuz##*/vmlinuz-}
[ -f "$kdir/lib/modules/$kver/modules.dep" ] || depmod -b "$kdir" "$kver"

# A tiny initramfs: busybox, the 9p modules, and an init that mounts / and switches into it.
initrd=$kdir/shoal-initramfs.cpio.gz
if [ ! -f "$initrd" ] || [ scripts/kernel-vm-init.sh -nt "$initrd" ]; then
  build=$(mktemp -d)
  trap 'rm -rf "$build"' EXIT
  mkdir -p "$build"/{bin,proc,sys,dev,newroot,mods}
  cp /bin/busybox "$build/bin/busybox"
  for m in 9p 9pnet_virtio virtio_pci overlay; do
    modprobe -d "$kdir" -S "$kver" --show-depends "$m" 2>/dev/null || true
  done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r ko; do
        cp "$ko" "$build/mods/"
        echo "/mods/${ko##*/}" >> "$build/mods/order"
      done
  [ -s "$build/mods/order" ] || { echo "kernel-vm: no 9p modules in $KERNEL_PKG" >&2; exit 2; }
  install -m 0755 scripts/kernel-vm-init.sh "$build/init"
  (cd "$build" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.part"
  mv "$initrd.part" "$initrd"
fi

# The job: the command, run by the guest's second stage from the checkout. Its status comes back
# through a writable share (the serial console only carries the output).
job=$(mktemp -d "$cache/job.XXXXXX")
trap 'rm -rf "$job" ${build:+"$build"}' EXIT
{
  echo "cd $(printf %q "$here")"
  printf '%q ' "$@"
  echo
} > "$job/cmd"

echo "kernel-vm: booting $kver ($KERNEL_PKG) under qemu, ${mem} MiB, $smp CPU"
set +e
timeout --foreground -k 10 "$timeout_s" qemu-system-x86_64 \
  -accel tcg -cpu max -m "$mem" -smp "$smp" -nographic -no-reboot -monitor none -serial stdio \
  -kernel "$vmlinuz" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 quiet loglevel=3 shoal.modules=$kdir/lib/modules shoal.job=$job shoal.checkout=$here shoal.stage2=$here/scripts/kernel-vm-stage2.sh" \
  -virtfs "local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap" \
  -virtfs "local,path=$job,mount_tag=job,security_model=none" \
  -nic none </dev/null
qemu_rc=$?
set -e
if [ $qemu_rc -eq 124 ]; then
  echo "kernel-vm: timed out after ${timeout_s}s" >&2
  exit 124
fi
[ -f "$job/rc" ] || { echo "kernel-vm: the VM never reported a result (qemu exit $qemu_rc)" >&2; exit 125; }
rc=$(cat "$job/rc")
echo "kernel-vm: $kver: command exited $rc"
exit "$rc"
