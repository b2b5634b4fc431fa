#!/bin/sh
# Second stage inside the kernel-vm.sh VM, run by the host's own /bin/sh on its read-only /:
# the writable places a test run needs, then the job's command; its status goes to the job
# share (mounted on /mnt), and the VM powers off.
mkdir -p /dev/shm && mount -t tmpfs shm /dev/shm
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t tmpfs varlib /var/tmp
ip link set lo up
hostname shoal-vm
export HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
echo "stage2: kernel $(uname -r), $(nproc) CPU"
sh -e /mnt/cmd
echo $? > /mnt/rc
sync
umount /mnt
/bin/busybox poweroff -f 2>/dev/null || echo o > /proc/sysrq-trigger
while :; do /bin/busybox sleep 60; done
