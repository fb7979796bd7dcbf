#!/usr/bin/env bash
# Installs the system packages tallystick's demo, tests and benchmarks need.
# Idempotent and quick when everything is present: it only calls apt when a
# command or header is missing. Run as root on Debian (bookworm or later).
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# build tools for native addons (better-sqlite3, serialport, pcsclite)
have_cmd g++ || need+=(g++)
have_cmd make || need+=(make)
have_cmd python3 || need+=(python3)
have_cmd gcc || need+=(gcc)
# PC/SC stack with the virtual reader driver, and the pcsc tools that prove the card is real
have_pkg pcscd || need+=(pcscd)
have_pkg libpcsclite-dev || need+=(libpcsclite-dev)
have_pkg vsmartcard-vpcd || need+=(vsmartcard-vpcd)
have_pkg pcsc-tools || need+=(pcsc-tools)
have_pkg pkg-config || need+=(pkg-config)
# the second verifiers (scripts/verify_checkpoint.py) check Ed25519 with Debian's python3-cryptography
have_pkg python3-cryptography || need+=(python3-cryptography)
# pty pairs for the simulated microcontroller
have_cmd socat || need+=(socat)
# the test pcscd runs in its own loopback-only network namespace (ip, unshare, nsenter)
have_cmd ip || need+=(iproute2)
have_cmd unshare || need+=(util-linux)
# the MQTT broker the tests start on a free loopback port
have_cmd mosquitto || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
have_cmd openssl || need+=(openssl)
# the SMS gateway the server side receives through (gammu-smsd reads the simulated modem's pty)
have_cmd gammu || need+=(gammu)
have_cmd gammu-smsd || need+=(gammu-smsd)
# real MQTT clients for the client-id takeover test (mosquitto_sub with another terminal's certificate)
have_cmd mosquitto_sub || need+=(mosquitto-clients)
# a clock far ahead, for real (test/terminal/clockJump.test.ts runs tally under faketime)
have_cmd faketime || need+=(faketime)
# PostgreSQL server binaries for the server-store contract tests (tests start their own cluster)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# the dashboard's browser tests: Debian's chromium driven by playwright-core, with Chinese fonts for zh pages
have_cmd chromium || need+=(chromium)
have_pkg fonts-noto-cjk || need+=(fonts-noto-cjk)
# the statement PDF's text and fonts, read back by test/server/statementBrowser.test.ts (pdftotext, pdffonts)
have_cmd pdftotext || need+=(poppler-utils)
# a QR decoder no one here wrote, for the voucher images (test/server/voucherBackOffice.test.ts)
have_cmd zbarimg || need+=(zbar-tools)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages: ${need[*]}; run this script as root (or install them with apt)" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # a policy-rc.d stops Debian from starting pcscd/mosquitto/postgresql services the tests did not ask for
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "setup: system packages present"
