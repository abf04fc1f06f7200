#!/usr/bin/env bash
# `A && ok ... || fail ...` is intended throughout: ok() only prints and never fails.
# shellcheck disable=SC2015
# Smoke test of the offline images (run after `docker compose -f infra/images/compose.yaml build`).
# Creates only containers/volumes/networks prefixed "ddimg-smoke" and removes them at exit.
# Publishes nothing on the host: clients run in containers on a private user network.
set -euo pipefail

p=ddimg-smoke
net=$p-net
work=$(mktemp -d)
cleanup() {
	docker rm -f "$p-pg" "$p-redis" "$p-nginx" >/dev/null 2>&1 || true
	docker volume rm "$p-pgdata" "$p-redisdata" >/dev/null 2>&1 || true
	docker network rm "$net" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*" >&2; exit 1; }
wait_for() { # wait_for SECONDS CMD...
	local n=$1; shift
	for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
	return 1
}

docker network create "$net" >/dev/null

# --- postgres -------------------------------------------------------------------------------------
out=$(docker run --rm drydock/postgres:17 2>&1 || true)
grep -q 'superuser password is not specified' <<<"$out" && ok "postgres refuses to init without POSTGRES_PASSWORD" \
	|| fail "postgres without password: $out"
mkdir -p "$work/initdb"
printf 'CREATE TABLE t (x int);\nINSERT INTO t VALUES (42);\n' >"$work/initdb/01-t.sql"
chmod -R a+rX "$work"
docker run -d --name "$p-pg" --network "$net" -v "$p-pgdata:/var/lib/postgresql/data" \
	-v "$work/initdb:/docker-entrypoint-initdb.d:ro" \
	-e POSTGRES_USER=app -e POSTGRES_PASSWORD=s3cret -e POSTGRES_DB=appdb drydock/postgres:17 >/dev/null
wait_for 60 docker exec "$p-pg" pg_isready -U app -d appdb || fail "postgres not ready"
ok "pg_isready -U app -d appdb"
got=$(docker run --rm --network "$net" -e PGPASSWORD=s3cret drydock/postgres:17 \
	psql -h "$p-pg" -U app -d appdb -Atc 'select x from t')
[ "$got" = 42 ] && ok "psql over TCP with password from another container (init .sql ran)" || fail "psql got '$got'"
if docker run --rm --network "$net" -e PGPASSWORD=wrong drydock/postgres:17 \
	psql -h "$p-pg" -U app -d appdb -c 'select 1' >/dev/null 2>&1; then fail "wrong password accepted"; fi
ok "wrong password rejected (scram-sha-256)"
[ "$(docker exec "$p-pg" ps -o user= -p 1)" = postgres ] && ok "PID 1 runs as postgres" || fail "PID 1 user"
docker restart "$p-pg" >/dev/null
wait_for 60 docker exec "$p-pg" pg_isready -U app -d appdb || fail "postgres not ready after restart"
docker logs "$p-pg" 2>&1 | grep -q 'Skipping initialization' && ok "restart does not re-initialise" || fail "re-init?"
for tool in pg_dump pg_restore pg_dumpall; do docker exec "$p-pg" "$tool" --version >/dev/null; done
ok "pg_dump, pg_restore, pg_dumpall on PATH"

# --- redis ----------------------------------------------------------------------------------------
docker run -d --name "$p-redis" --network "$net" -v "$p-redisdata:/data" drydock/redis:8 >/dev/null
rcli() { docker run --rm --network "$net" drydock/redis:8 redis-cli -h "$p-redis" "$@"; }
wait_for 30 rcli ping || fail "redis ping"
[ "$(rcli ping)" = PONG ] && ok "redis-cli ping from another container"
rcli set k v1 >/dev/null; [ "$(rcli get k)" = v1 ] && ok "redis set/get"
rcli bgsave >/dev/null; sleep 2
docker exec "$p-redis" test -s /data/dump.rdb && ok "BGSAVE wrote /data/dump.rdb"
docker restart "$p-redis" >/dev/null; wait_for 30 rcli ping
[ "$(rcli get k)" = v1 ] && ok "data survives restart" || fail "redis persistence"
[ "$(docker exec "$p-redis" stat -c %U /proc/1)" = redis ] \
	&& ok "redis-server runs as redis" || fail "redis user"
docker rm -f "$p-redis" >/dev/null
docker run -d --name "$p-redis" --network "$net" drydock/redis:8 redis-server --requirepass pw >/dev/null
wait_for 30 rcli -a pw --no-auth-warning ping || fail "redis with password"
[ "$(rcli ping 2>&1)" != PONG ] && ok "--requirepass passes through (NOAUTH without password)"

# --- rust + runtime -------------------------------------------------------------------------------
mkdir -p "$work/hello/src"
printf '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n' >"$work/hello/Cargo.toml"
printf 'fn main() { println!("hello from {}", std::env::current_dir().unwrap().display()); }\n' \
	>"$work/hello/src/main.rs"
docker run --rm -v "$work/hello:/src" -w /src drydock/rust:1.96 cargo build --release -q
ok "cargo build in drydock/rust:1.96 ($(docker run --rm drydock/rust:1.96 rustc --version))"
got=$(docker run --rm -v "$work/hello/target/release:/app:ro" drydock/runtime:trixie /app/hello)
[ "$got" = "hello from /home/nonroot" ] && ok "glibc binary runs in drydock/runtime as nonroot" || fail "runtime: $got"
[ "$(docker image inspect -f '{{.Config.User}}' drydock/runtime:trixie)" = 65532:65532 ] && ok "runtime USER 65532"
if docker run --rm --entrypoint sh drydock/runtime:trixie -c true >/dev/null 2>&1; then fail "runtime has a shell"; fi
ok "runtime has no shell"

# --- node -----------------------------------------------------------------------------------------
docker run --rm drydock/node:20 node -e 'process.exit(process.version.startsWith("v20.") ? 0 : 1)' \
	&& ok "node $(docker run --rm drydock/node:20 node --version), npm $(docker run --rm drydock/node:20 npm --version)"

# --- nginx ----------------------------------------------------------------------------------------
docker run --rm --read-only --tmpfs /tmp drydock/nginx:1.26 nginx -t 2>&1 | grep -q 'test is successful' \
	&& ok "nginx -t (read-only root, tmpfs /tmp)"
mkdir -p "$work/tpl" "$work/html"
# shellcheck disable=SC2016 # nginx variables are literal
printf 'server {\n  listen ${PORT};\n  add_header X-Up "${UPSTREAM}" always;\n  add_header X-Host "$host" always;\n  root /usr/share/nginx/html;\n}\n' \
	>"$work/tpl/default.conf.template"
echo '<h1>smoke</h1>' >"$work/html/index.html"
chmod -R a+rX "$work"
docker run -d --name "$p-nginx" --network "$net" --read-only --tmpfs /tmp --tmpfs /etc/nginx/conf.d:uid=101,gid=101 \
	-v "$work/tpl:/etc/nginx/templates:ro" -v "$work/html:/usr/share/nginx/html:ro" \
	-e PORT=8080 -e UPSTREAM=api:8000 drydock/nginx:1.26 >/dev/null
fetch() { docker run --rm --network "$net" drydock/node:20 node -e '
  fetch(process.argv[1]).then(async r => console.log(r.status, r.headers.get("x-up"), r.headers.get("x-host"), (await r.text()).trim()))
  .catch(e => { console.error(e.message); process.exit(1); })' "$1"; }
wait_for 30 fetch "http://$p-nginx:8080/" || fail "nginx not serving"
got=$(fetch "http://$p-nginx:8080/")
[ "$got" = "200 api:8000 $p-nginx <h1>smoke</h1>" ] && ok "nginx serves on 8080 with envsubst-rendered template (\$host kept)" \
	|| fail "nginx: $got"
[ "$(docker exec "$p-nginx" sh -c 'while read -r k v _; do [ "$k" = Uid: ] && echo "$v"; done </proc/1/status')" = 101 ] \
	&& ok "nginx master runs as uid 101"
docker stop "$p-nginx" >/dev/null && ok "nginx stops (STOPSIGNAL $(docker image inspect -f '{{.Config.StopSignal}}' drydock/nginx:1.26))"

echo "all smoke tests passed"
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E '^drydock/(base|postgres|redis|rust|node|runtime|nginx):' | sort
