#!/bin/sh
# Runs before 20-envsubst-on-templates.sh renders /etc/nginx/templates/*.template into
# NGINX_ENVSUBST_OUTPUT_DIR (/tmp: a tmpfs when the root filesystem is read-only):
#   config.js            -> window.__DRYDOCK_CONFIG__ = { apiBaseUrl: "$API_BASE_URL" }
#   drydock-runtime.conf -> set $drydock_api_base "$API_BASE_URL";   (CSP connect-src)
# The value lands inside a JS string and an nginx string, so refuse characters that would break out.
# POSIX sh builtins only: the nginx image has no coreutils.
set -eu
case "${API_BASE_URL:-}" in
  *\"*|*\'*|*\\*|*\;*|*'$'*|*'{'*|*'}'*|*'<'*|*'>'*|*' '*|*'	'*|*"
"*)
    echo "$0: ERROR: API_BASE_URL='${API_BASE_URL}' contains a character that is not allowed in a URL here" >&2
    exit 1
    ;;
esac
if [ "${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}" != "/tmp" ]; then
    echo "$0: WARNING: NGINX_ENVSUBST_OUTPUT_DIR must stay /tmp (nginx reads /tmp/config.js and /tmp/drydock-*.conf)" >&2
fi
echo "$0: API base URL: '${API_BASE_URL:-}' (empty = same origin)"
