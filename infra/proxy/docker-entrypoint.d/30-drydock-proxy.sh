#!/bin/sh
# Writes the edge proxy's configuration into /tmp (writable under a read-only root filesystem):
#   /tmp/drydock-proxy-server.conf  the server blocks (included by conf.d/default.conf):
#     TLS mode, when the certificate and key files exist (mount them, e.g. compose.prod.yaml's `tls` volume):
#       8443: TLS (TLS 1.2/1.3, HSTS) with the routes; 8080: /proxy-health, everything else 301 to HTTPS.
#     Plain mode otherwise: 8080 with the routes.
#   /tmp/drydock-proxy-limits.conf  the per-client rate limit zones and the trusted proxies (http level);
#   /tmp/drydock-routes.conf        the routes, from /etc/nginx/snippets/drydock-routes.conf.template;
#   /tmp/drydock-proxy-maintenance.conf  maintenance mode, off at start (`cargo xtask prod-maintenance on|off`
#                                   rewrites it and reloads nginx: no restart).
# Environment (all optional; empty means the default):
#   API_UPSTREAM            host:port of the API replicas      (default api:8000)
#   FRONTEND_UPSTREAM       host:port of the frontend          (default frontend:8080)
#   PROXY_TLS_CERT / _KEY   certificate chain and key files    (default /etc/nginx/tls/tls.crt, tls.key)
#   PROXY_PUBLIC_HTTPS_PORT the HTTPS port clients see, for the redirect (default 443)
#   PROXY_HSTS_MAX_AGE      Strict-Transport-Security max-age  (default 63072000 = 2 years)
#   PROXY_TRUSTED_PROXIES   load balancers in front of the proxy: IPv4/IPv6 addresses or CIDRs, separated by
#                           commas or spaces (default none). Requests from them have their client address
#                           taken from PROXY_REAL_IP_HEADER (nginx real_ip, recursive); everyone else's header
#                           is ignored.
#   PROXY_REAL_IP_HEADER    X-Forwarded-For (default), X-Real-IP, CF-Connecting-IP or True-Client-IP
#   PROXY_API_RATE / _BURST       per-client limit on /api/: requests per second / extra at once (100 / 200)
#   PROXY_STATIC_RATE / _BURST    per-client limit on everything else but /health    (300 / 400)
# In production these come from infra/stack.toml [proxy] (cargo xtask validates them there first).
# Plain POSIX sh without coreutils (the nginx image has only dash, envsubst and nginx).
set -eu

out=/tmp/drydock-proxy-server.conf
limits_out=/tmp/drydock-proxy-limits.conf
routes_out=/tmp/drydock-routes.conf
maintenance_out=/tmp/drydock-proxy-maintenance.conf
routes_template=/etc/nginx/snippets/drydock-routes.conf.template
api=${API_UPSTREAM:-api:8000}
frontend=${FRONTEND_UPSTREAM:-frontend:8080}
cert=${PROXY_TLS_CERT:-/etc/nginx/tls/tls.crt}
key=${PROXY_TLS_KEY:-/etc/nginx/tls/tls.key}
https_port=${PROXY_PUBLIC_HTTPS_PORT:-443}
hsts_max_age=${PROXY_HSTS_MAX_AGE:-63072000}
trusted=${PROXY_TRUSTED_PROXIES:-}
real_ip_header=${PROXY_REAL_IP_HEADER:-X-Forwarded-For}
api_rate=${PROXY_API_RATE:-100}
api_burst=${PROXY_API_BURST:-200}
static_rate=${PROXY_STATIC_RATE:-300}
static_burst=${PROXY_STATIC_BURST:-400}

fail() {
    echo "30-drydock-proxy.sh: error: $*" >&2
    exit 1
}

# Values end up in nginx configuration: accept only what a host:port, a path or a number can contain.
check() {
    case "$2" in
        '' | *[!A-Za-z0-9._:/-]*) fail "$1=\"$2\" is not valid (letters, digits and . _ : / - only)" ;;
    esac
}
check API_UPSTREAM "$api"
check FRONTEND_UPSTREAM "$frontend"
check PROXY_TLS_CERT "$cert"
check PROXY_TLS_KEY "$key"
case "$https_port" in '' | *[!0-9]*) fail "PROXY_PUBLIC_HTTPS_PORT=\"$https_port\" is not a port number" ;; esac
case "$hsts_max_age" in '' | *[!0-9]*) fail "PROXY_HSTS_MAX_AGE=\"$hsts_max_age\" is not a number" ;; esac

# A whole number of at most 7 digits (no sign, no unit); `positive` also refuses 0.
number() {
    case "$2" in
        '' | *[!0-9]* | ????????*) fail "$1=\"$2\" is not a whole number from $3 to 9999999" ;;
    esac
    if [ "$3" = 1 ]; then
        case "$2" in *[!0]*) ;; *) fail "$1=\"$2\" is 0: a rate must be at least 1 request per second" ;; esac
    fi
}
number PROXY_API_RATE "$api_rate" 1
number PROXY_API_BURST "$api_burst" 0
number PROXY_STATIC_RATE "$static_rate" 1
number PROXY_STATIC_BURST "$static_burst" 0

case "$real_ip_header" in
    X-Forwarded-For | X-Real-IP | CF-Connecting-IP | True-Client-IP) ;;
    *) fail "PROXY_REAL_IP_HEADER=\"$real_ip_header\" is not one of X-Forwarded-For, X-Real-IP, CF-Connecting-IP, True-Client-IP" ;;
esac

# One trusted address or CIDR: IPv4 as four numbers 0-255, IPv6 as hex digits and colons (nginx checks the rest
# when it starts); a prefix from 1 to 32 / 128 (never 0: that would trust every client's header).
cidr() {
    entry=$1
    addr=${entry%/*}
    prefix=
    case "$entry" in */*) prefix=${entry#*/} ;; esac
    case "$addr" in
        *:*)
            max=128
            case "$addr" in *[!0-9A-Fa-f:.]* | *:::*) fail "PROXY_TRUSTED_PROXIES: \"$entry\" is not an IPv6 address or CIDR" ;; esac
            ;;
        *)
            max=32
            case "$addr" in
                .* | *. | *..* | *[!0-9.]*) fail "PROXY_TRUSTED_PROXIES: \"$entry\" is not an IPv4 address or CIDR" ;;
            esac
            saved_ifs=$IFS
            IFS=.
            # shellcheck disable=SC2086 # split on the dots on purpose
            set -- $addr
            IFS=$saved_ifs
            [ "$#" -eq 4 ] || fail "PROXY_TRUSTED_PROXIES: \"$entry\" is not an IPv4 address or CIDR (four numbers)"
            for octet in "$@"; do
                case "$octet" in ????* | *[!0-9]*) fail "PROXY_TRUSTED_PROXIES: \"$entry\" has a part above 255" ;; esac
                [ "$octet" -le 255 ] || fail "PROXY_TRUSTED_PROXIES: \"$entry\" has a part above 255"
            done
            ;;
    esac
    if [ -n "$prefix" ] || [ "$entry" != "$addr" ]; then
        case "$prefix" in '' | *[!0-9]* | ????*) fail "PROXY_TRUSTED_PROXIES: \"$entry\" has no prefix length from 1 to $max" ;; esac
        [ "$prefix" -ne 0 ] || fail "PROXY_TRUSTED_PROXIES: \"$entry\" trusts every address: any client could choose its own address"
        [ "$prefix" -le "$max" ] || fail "PROXY_TRUSTED_PROXIES: \"$entry\" has no prefix length from 1 to $max"
    fi
}

real_ip=''
trusted_list=''
set -f
saved_ifs=$IFS
IFS=', '
# shellcheck disable=SC2086 # split the list on commas and spaces on purpose (globbing is off)
set -- $trusted
IFS=$saved_ifs
set +f
for entry in "$@"; do
    cidr "$entry"
    real_ip="${real_ip}set_real_ip_from $entry;
"
    trusted_list="$trusted_list $entry"
done
if [ -n "$real_ip" ]; then
    real_ip="# Requests from these proxies: the client is the rightmost address in $real_ip_header not among them.
${real_ip}real_ip_header $real_ip_header;
real_ip_recursive on;"
    client_from="the client address from $real_ip_header of$trusted_list"
else
    real_ip="# No trusted proxies: the client is the peer (a client's X-Forwarded-For changes nothing)."
    client_from="the peer as the client address (no trusted proxies)"
fi

# Maintenance mode is off until `cargo xtask prod-maintenance on` (a proxy restart turns it off again).
# shellcheck disable=SC2016 # nginx variables, literally
printf '%s\n' 'map $scheme $drydock_maintenance { default 0; }' >"$maintenance_out"

printf '%s\n' "# Generated by 30-drydock-proxy.sh: where the client address comes from, and per-client rate limits.
$real_ip
limit_req_zone \$binary_remote_addr zone=api:10m rate=${api_rate}r/s;
limit_req_zone \$binary_remote_addr zone=static:10m rate=${static_rate}r/s;" >"$limits_out"

# Only the two placeholders: every nginx variable in the template stays as it is. nginx refuses `burst=0`: no
# burst is written as no parameter.
burst_param() {
    if [ "$1" -eq 0 ]; then echo ''; else echo "burst=$1"; fi
}
# shellcheck disable=SC2016 # envsubst's list of variables to replace, literally
DRYDOCK_API_BURST=$(burst_param "$api_burst") DRYDOCK_STATIC_BURST=$(burst_param "$static_burst") \
    envsubst '${DRYDOCK_API_BURST} ${DRYDOCK_STATIC_BURST}' <"$routes_template" >"$routes_out"
echo "30-drydock-proxy.sh: $client_from; per client: /api/ ${api_rate} r/s (burst ${api_burst}), static ${static_rate} r/s (burst ${static_burst})"

health='location = /proxy-health { access_log off; default_type application/json; return 200 '"'"'{"status":"ok"}'"'"'; }'
# (TLS mode's port 8080 serves only these two; plain mode has them in the routes)
health="$health
    location = /proxy-maintenance { access_log off; if (\$remote_addr != \"127.0.0.1\") { return 404; } default_type text/plain; return 200 \"\$drydock_maintenance\"; }"
upstreams="set \$api_upstream http://$api;
    set \$frontend_upstream http://$frontend;"

if [ -f "$cert" ] && [ -f "$key" ]; then
    [ -r "$cert" ] || fail "$cert exists but the nginx user (uid 101) cannot read it: chmod 0644 it"
    [ -r "$key" ] || fail "$key exists but the nginx user (uid 101) cannot read it: chgrp 101 and chmod 0640 it (or 0644 inside a 0700 directory)"
    if [ "$https_port" = 443 ]; then port_suffix=''; else port_suffix=":$https_port"; fi
    # (no `cat` in this image: the configuration is one printf'd string)
    printf '%s\n' "# Generated by 30-drydock-proxy.sh: TLS mode ($cert).
server {
    listen 8080 default_server;
    server_name _;
    $health
    location / {
        return 301 https://\$host$port_suffix\$request_uri;
    }
}

server {
    listen 8443 ssl default_server;
    http2 on;
    server_name _;

    ssl_certificate     $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:drydock_tls:10m;
    ssl_session_timeout 1d;
    ssl_session_tickets off;

    add_header Strict-Transport-Security \"max-age=$hsts_max_age; includeSubDomains\" always;

    $upstreams
    include $routes_out;
}" >"$out"
    echo "30-drydock-proxy.sh: TLS on 8443 with $cert; 8080 redirects to https (port $https_port)"
elif [ -e "$cert" ] || [ -e "$key" ]; then
    fail "only one of $cert and $key exists: mount both (or neither, for plain HTTP)"
else
    printf '%s\n' "# Generated by 30-drydock-proxy.sh: plain HTTP (no certificate at $cert).
server {
    listen 8080 default_server;
    server_name _;
    $upstreams
    include $routes_out;
}" >"$out"
    echo "30-drydock-proxy.sh: plain HTTP on 8080 (no certificate at $cert)"
fi
