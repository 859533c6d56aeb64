#!/usr/bin/env bash
# Installs what coordinatord needs on a Debian machine (hiredis headers, redis-server and its
# tools), and nothing when it is already there; with setup_for_tests=1 (scripts/test.sh) also
# what only the tests need (a browser, Selenium, Prometheus's parser). Swift itself is expected
# on PATH.
set -euo pipefail

need=()
[ -f /usr/include/hiredis/hiredis.h ] || need+=(libhiredis-dev)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
for_tests="${setup_for_tests:-0}"
if [ "$for_tests" = 1 ]; then
    # The freeze tests prove a SIGSTOPped daemon's sockets drained with ss (iproute2).
    command -v ss >/dev/null 2>&1 || need+=(iproute2)
    # The web console's browser test: Debian's Chromium, its WebDriver and Selenium for Python.
    [ -x /usr/bin/chromium ] || need+=(chromium)
    [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
    /usr/bin/python3 -c 'import selenium' >/dev/null 2>&1 || need+=(python3-selenium)
    # The console's HTTPS test makes a certificate with openssl and fetches pages with curl.
    [ -x /usr/bin/openssl ] || need+=(openssl)
    [ -x /usr/bin/curl ] || need+=(curl)
fi

if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${need[*]}" >&2
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${need[@]}"
fi

# The metrics tests parse /metrics with the Prometheus project's own Python parser.
if [ "$for_tests" = 1 ] && ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
    echo "setup: installing the Python prometheus-client (for the metrics tests)" >&2
    python3 -m pip install --quiet prometheus-client >/dev/null 2>&1 \
        || python3 -m pip install --quiet --break-system-packages prometheus-client >/dev/null 2>&1 \
        || echo "setup: could not install prometheus-client; the metrics tests will say so" >&2
fi

if ! command -v swift >/dev/null 2>&1; then
    for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
        [ -x "$d/swift" ] && export PATH="$d:$PATH"
    done
fi
command -v swift >/dev/null 2>&1 || { echo "setup: swift is not on PATH" >&2; exit 1; }
