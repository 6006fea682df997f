#!/usr/bin/env bash
# Debian 12 packages Corral needs to run locally and to test against real components.
# Idempotent: installs only what is missing, and runs `apt-get update` only then.
# Run as root (`make deps` does). Any failure stops with a message.
set -euo pipefail
trap 'echo "install-debian-deps: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

PACKAGES=(
  python3 python3-venv   # the venv (on a machine without another Python 3.11+)
  redis-server           # the job queue
  docker.io              # dockerd, containerd, runc: the container host
  busybox-static         # the rootfs of the local corral/busybox image
  iproute2               # ip netns: the private dockerd's and the VM tests' namespaces
  iptables               # dockerd's bridge networks: published ports, clusters cut off from each other
  openssh-server openssh-client  # sshd hosts for the ssh driver
  qemu-system-x86 qemu-utils     # VMs under TCG
  openjdk-17-jre-headless  # runs DynamoDB Local, the local table server (npm: amplify-dynamodb-simulator)
  procps                 # ps, pkill for humans; pgrep in tests
  curl                   # the README's tour of the API
  ca-certificates        # pip over TLS
  postgresql             # database hosts: make run's local PostgreSQL, and the tests'
  mariadb-server         # database hosts: the tests' MySQL-compatible server
  btrfs-progs            # mkfs.btrfs, btrfs quota: dockerd's data root on a loop image, so storage_mb is enforced
  docker-registry        # a real local OCI registry for the image-pull tests
  chromium               # the headless browser of the dashboard tests (driven by Playwright)
)

missing_packages() {
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii'; then
      echo "$pkg"
    fi
  done
}

main() {
  local missing
  missing=$(missing_packages)
  if [ -z "$missing" ]; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-debian-deps: missing packages:" $missing >&2
    echo "install-debian-deps: run as root (or install them with apt-get)" >&2
    exit 1
  fi
  echo "install-debian-deps: installing:" $missing
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086  # one package per word
  apt-get install -y -qq --no-install-recommends $missing
  missing=$(missing_packages)
  if [ -n "$missing" ]; then
    echo "install-debian-deps: still missing after apt-get install:" $missing >&2
    exit 1
  fi
}

main "$@"
