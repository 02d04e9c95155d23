#!/usr/bin/env bash
# Make sure nginx (the cluster's front proxy) is installed. The cluster and its tests run their own
# nginx on loopback ports with their own configuration; the system's nginx service is not used.
# Installed: nothing to do. Not installed: install Debian's package when we are root with apt-get
# (the package's own service is not started), otherwise say exactly how.
set -euo pipefail
if command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]]; then exit 0; fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "nginx is not installed: installing Debian's nginx" >&2
  # RUNLEVEL=1 keeps invoke-rc.d from starting the package's service on port 80.
  apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
  exit 0
fi
cat >&2 <<'MSG'
The cluster (make cluster) and its tests need nginx as the front proxy, and it is not installed:
  sudo apt-get install nginx          (Debian/Ubuntu; the cluster runs its own nginx on 127.0.0.1)
  brew install nginx                  (macOS)
MSG
exit 1
