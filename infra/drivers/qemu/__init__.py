"""The QEMU driver: VMs on a host reached over SSH, one qemu-system process each."""
