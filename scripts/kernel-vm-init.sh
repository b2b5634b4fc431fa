#!/bin/busybox sh
# First stage inside the kernel-vm.sh VM (the initramfs's /init): load the 9p modules, mount the
# host's / read-only, put the kernel package's modules and the job share in place, then switch
# into it and run the second stage from the checkout.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for ko in $(cat /mods/order); do insmod "$ko" || echo "init: insmod $ko failed"; done
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p"; }
modules=$(arg shoal.modules)
job=$(arg shoal.job)
stage2=$(arg shoal.stage2)
checkout=$(arg shoal.checkout)
# cache=loose: the host's files do not change under the VM, and Python imports get much faster.
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro root /newroot; then
  echo "init: cannot mount the host's / over 9p"; dmesg | tail -5; echo o > /proc/sysrq-trigger
fi
# /tmp is the VM's own; a checkout under the host's /tmp is mounted back at its path.
case "$checkout" in /tmp/*)
  mkdir -p /hosttmp && mount --bind /newroot/tmp /hosttmp ;;
esac
mount -t tmpfs -o mode=1777 tmp /newroot/tmp
case "$checkout" in /tmp/*)
  mkdir -p "/newroot$checkout" && mount --bind "/hosttmp${checkout#/tmp}" "/newroot$checkout" ;;
esac
mount -t tmpfs run /newroot/run
# The kernel package's modules on /lib/modules. This machine may have no /lib/modules to mount
# over (a kernel without modules): then /usr/lib gets a tmpfs overlay to create it in.
mkdir -p /scratch && mount -t tmpfs scratch /scratch
if [ -d /newroot/lib/modules ]; then
  mount -t tmpfs modules /newroot/lib/modules
else
  mkdir -p /scratch/upper /scratch/work
  mount -t overlay -o lowerdir=/newroot/usr/lib,upperdir=/scratch/upper,workdir=/scratch/work \
    usrlib /newroot/usr/lib || echo "init: no overlay on /usr/lib: modules unavailable"
fi
for d in /newroot"$modules"/*; do
  mkdir -p "/newroot/lib/modules/${d##*/}"
  mount --bind "$d" "/newroot/lib/modules/${d##*/}"
done
mount -t 9p -o trans=virtio,version=9p2000.L job /newroot/mnt
echo "$job" > /newroot/run/shoal-job
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/sh "$stage2"
