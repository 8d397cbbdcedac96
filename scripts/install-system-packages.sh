#!/usr/bin/env bash
# Debian packages the tests use: Chromium renders the HTML report in a browser test; PostgreSQL
# backs the Prefect and MLflow servers in the service test (scripts/postgres.sh starts it).
# Installs only what is missing, and only where apt-get can run as root; otherwise the
# tests that need a package skip with the reason.
set -u
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: cannot install ${missing[*]} (needs root and apt-get); tests that use them will be skipped" >&2
    exit 0
fi
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
(apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null) \
    || echo "note: apt-get could not install ${missing[*]}; tests that use them will be skipped" >&2
exit 0
