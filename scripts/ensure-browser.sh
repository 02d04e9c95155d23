#!/usr/bin/env bash
# Make sure Debian's chromium and chromium-driver are installed for the browser tests
# (tests/browser). Installed: nothing to do. Not installed: install them when we are root with
# apt-get; otherwise say how and exit 0, and the browser tests skip with the same advice (they are
# the only tests that may skip).
set -euo pipefail
have() { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }
if have; then exit 0; fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "chromium/chromium-driver are not installed: installing Debian's packages" >&2
  # The lock timeout: another apt-get on the machine finishes first instead of failing this one.
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    chromium chromium-driver >/dev/null
  have && exit 0
  echo "installing chromium and chromium-driver failed" >&2
  exit 1
fi
cat >&2 <<'MSG'
The browser tests (tests/browser) need Chromium and its WebDriver; they will be skipped.
Install them, e.g.  sudo apt-get install chromium chromium-driver   (Debian/Ubuntu),
then run make test again.
MSG
exit 0
