#!/bin/sh
# Called by `make test`: the UI browser tests drive Debian's chromium through Playwright
# (Playwright's own browser download does not work here). Installs it when missing and we
# are root; otherwise says so and the browser tests skip with that reason.
CHROMIUM=${SYMBIONT_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the UI browser tests (about 2-3 minutes)..."
    apt-get update -q >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null ||
        { echo "apt-get install chromium failed" >&2; exit 1; }
    exit 0
fi
echo "note: $CHROMIUM is missing and this is not root: the UI browser tests will skip" >&2
exit 0
