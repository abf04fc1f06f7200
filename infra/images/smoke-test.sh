#!/usr/bin/env bash
# `A && ok ... || fail ...` is intended throughout: ok() only prints and never fails.
# shellcheck disable=SC2015
# Smoke test of the offline images (run after `docker compose -f infra/images/compose.yaml build`).
# Creates only containers/volumes/networks prefixed "ddimg-smoke" and removes them at exit.
# Publishes nothing on the host: clients run in containers on a private user network.
# Every check ends in `|| fail`: under `set -e` a failing `A && ok` list would be ignored.
# Output is captured before it is searched: `cmd | grep -q` under pipefail fails at random (grep exits at
# the first match, `cmd` then dies of SIGPIPE and the pipeline reports that).
set -euo pipefail

p=ddimg-smoke
net=$p-net
work=$(mktemp -d)
remove_resources() {
	docker rm -f -v "$p-pg" "$p-redis" "$p-nginx" >/dev/null 2>&1 || true
	docker volume rm "$p-pgdata" "$p-redisdata" >/dev/null 2>&1 || true
	docker network rm "$net" >/dev/null 2>&1 || true
}
cleanup() {
	remove_resources
	rm -rf "$work"
}
trap cleanup EXIT
# Leftovers of an interrupted run (a kept volume would even skip the initialisation tested below).
remove_resources
ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*" >&2; exit 1; }
wait_for() { # wait_for SECONDS CMD...
	local n=$1; shift
	for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
	return 1
}
logs_contain() { # logs_contain CONTAINER TEXT: captured first (see above), then searched
	local logs
	logs=$(docker logs "$1" 2>&1) || return 1
	grep -qF -- "$2" <<<"$logs"
}
count_in_logs() { # count_in_logs CONTAINER TEXT: how many log lines contain TEXT
	local logs
	logs=$(docker logs "$1" 2>&1)
	grep -cF -- "$2" <<<"$logs" || true
}

docker network create "$net" >/dev/null

# --- postgres -------------------------------------------------------------------------------------
rc=0; out=$(docker run --rm drydock/postgres:17 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q 'superuser password is not specified' <<<"$out" \
	&& ok "postgres refuses to init without POSTGRES_PASSWORD" || fail "postgres without password (exit $rc): $out"
mkdir -p "$work/initdb"
printf 'CREATE TABLE t (x int);\nINSERT INTO t VALUES (42);\n' >"$work/initdb/01-t.sql"
chmod -R a+rX "$work"
docker run -d --name "$p-pg" --network "$net" -v "$p-pgdata:/var/lib/postgresql/data" \
	-v "$work/initdb:/docker-entrypoint-initdb.d:ro" \
	-e POSTGRES_USER=app -e POSTGRES_PASSWORD=s3cret -e POSTGRES_DB=appdb drydock/postgres:17 >/dev/null
# Over TCP, not the socket: during initialisation the entrypoint runs a temporary server that listens on the
# Unix socket only (listen_addresses=''), so a socket pg_isready can answer before init has finished.
wait_for 60 docker exec "$p-pg" pg_isready -h 127.0.0.1 -U app -d appdb || fail "postgres not ready"
wait_for 10 logs_contain "$p-pg" 'PostgreSQL init process complete' || fail "postgres ready over TCP before its init completed"
ok "pg_isready -h 127.0.0.1 -U app -d appdb (after the init process completed)"
got=$(docker run --rm --network "$net" -e PGPASSWORD=s3cret drydock/postgres:17 \
	psql -h "$p-pg" -U app -d appdb -Atc 'select x from t') || fail "psql over TCP from another container failed"
[ "$got" = 42 ] && ok "psql over TCP with password from another container (init .sql ran)" || fail "psql got '$got'"
rc=0; out=$(docker run --rm --network "$net" -e PGPASSWORD=wrong drydock/postgres:17 \
	psql -h "$p-pg" -U app -d appdb -c 'select 1' 2>&1) || rc=$?
[ "$rc" = 2 ] && grep -q 'password authentication failed for user "app"' <<<"$out" \
	&& ok "wrong password rejected (scram-sha-256)" || fail "wrong password (exit $rc): $out"
[ "$(docker exec "$p-pg" ps -o user= -p 1)" = postgres ] && ok "PID 1 runs as postgres" || fail "PID 1 user"
docker restart "$p-pg" >/dev/null
wait_for 60 docker exec "$p-pg" pg_isready -h 127.0.0.1 -U app -d appdb || fail "postgres not ready after restart"
# Ready inside is not yet reachable by name from another container: right after a restart the network's DNS
# can still answer with the address the container had before (seen under load: "connection refused").
wait_for 60 docker run --rm --network "$net" drydock/postgres:17 pg_isready -h "$p-pg" -U app -d appdb \
	|| fail "postgres not reachable as $p-pg from another container after restart"
# The entrypoint prints "Skipping initialization" before it starts postgres; poll (bounded) all the same.
wait_for 30 logs_contain "$p-pg" 'Skipping initialization' || fail "re-init? no 'Skipping initialization' after the restart"
inits=$(count_in_logs "$p-pg" 'PostgreSQL init process complete')
got=$(docker run --rm --network "$net" -e PGPASSWORD=s3cret drydock/postgres:17 \
	psql -h "$p-pg" -U app -d appdb -Atc 'select count(*) from t') || fail "psql after the restart failed"
[ "$inits" = 1 ] && [ "$got" = 1 ] && ok "restart does not re-initialise (init ran once, table t kept its row)" \
	|| fail "re-init? init ran $inits time(s), t has '$got' row(s)"
for tool in pg_dump pg_restore pg_dumpall; do docker exec "$p-pg" "$tool" --version >/dev/null; done
ok "pg_dump, pg_restore, pg_dumpall on PATH"

# --- redis ----------------------------------------------------------------------------------------
docker run -d --name "$p-redis" --network "$net" -v "$p-redisdata:/data" drydock/redis:8 >/dev/null
rcli() { docker run --rm --network "$net" drydock/redis:8 redis-cli -h "$p-redis" "$@"; }
wait_for 30 rcli ping || fail "redis ping"
[ "$(rcli ping)" = PONG ] && ok "redis-cli ping from another container" || fail "redis ping"
rcli set k v1 >/dev/null; [ "$(rcli get k)" = v1 ] && ok "redis set/get" || fail "redis set/get"
docker exec "$p-redis" test ! -e /data/dump.rdb || fail "/data/dump.rdb exists before BGSAVE"
[ "$(rcli bgsave)" = "Background saving started" ] || fail "redis BGSAVE did not start"
wait_for 30 docker exec "$p-redis" test -s /data/dump.rdb && ok "BGSAVE wrote /data/dump.rdb" || fail "redis BGSAVE"
docker restart "$p-redis" >/dev/null
wait_for 30 rcli ping || fail "redis not answering after restart"
[ "$(rcli get k)" = v1 ] && ok "data survives restart" || fail "redis persistence"
[ "$(docker exec "$p-redis" stat -c %U /proc/1)" = redis ] \
	&& ok "redis-server runs as redis" || fail "redis user"
docker rm -f "$p-redis" >/dev/null
docker run -d --name "$p-redis" --network "$net" drydock/redis:8 redis-server --requirepass pw >/dev/null
# redis-cli exits 0 on an error reply too, so wait for an answer, then check what it is.
wait_for 30 rcli -a pw --no-auth-warning ping || fail "redis with password not answering"
[ "$(rcli -a pw --no-auth-warning ping)" = PONG ] || fail "redis with password: no PONG with the password"
out=$(rcli ping 2>&1)
grep -q '^NOAUTH' <<<"$out" && ok "--requirepass passes through (NOAUTH without password)" || fail "redis without password: $out"

# --- rust + runtime -------------------------------------------------------------------------------
mkdir -p "$work/hello/src"
printf '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n' >"$work/hello/Cargo.toml"
printf 'fn main() { println!("hello from {}", std::env::current_dir().unwrap().display()); }\n' \
	>"$work/hello/src/main.rs"
docker run --rm -v "$work/hello:/src" -w /src drydock/rust:1.96 cargo build --release -q
ok "cargo build in drydock/rust:1.96 ($(docker run --rm drydock/rust:1.96 rustc --version))"
got=$(docker run --rm -v "$work/hello/target/release:/app:ro" drydock/runtime:trixie /app/hello)
[ "$got" = "hello from /home/nonroot" ] && ok "glibc binary runs in drydock/runtime as nonroot" || fail "runtime: $got"
[ "$(docker image inspect -f '{{.Config.User}}' drydock/runtime:trixie)" = 65532:65532 ] && ok "runtime USER 65532" \
	|| fail "runtime USER"
# 127: the executable is not in the image (125 would be Docker failing, e.g. a missing image).
rc=0; out=$(docker run --rm --entrypoint sh drydock/runtime:trixie -c true 2>&1) || rc=$?
[ "$rc" = 127 ] && ok "runtime has no shell" || fail "runtime shell: exit $rc: $out"

# --- node -----------------------------------------------------------------------------------------
docker run --rm drydock/node:20 node -e 'process.exit(process.version.startsWith("v20.") ? 0 : 1)' \
	&& ok "node $(docker run --rm drydock/node:20 node --version), npm $(docker run --rm drydock/node:20 npm --version)" \
	|| fail "node is not v20"

# --- nginx ----------------------------------------------------------------------------------------
out=$(docker run --rm --read-only --tmpfs /tmp drydock/nginx:1.26 nginx -t 2>&1) || fail "nginx -t: $out"
grep -q 'test is successful' <<<"$out" && ok "nginx -t (read-only root, tmpfs /tmp)" || fail "nginx -t: $out"
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
	&& ok "nginx master runs as uid 101" || fail "nginx master uid"
# `docker stop` succeeds even when it has to SIGKILL after the timeout: exit code 0 means nginx quit by itself.
signal=$(docker image inspect -f '{{.Config.StopSignal}}' drydock/nginx:1.26)
docker stop -t 10 "$p-nginx" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$p-nginx")
[ "$signal" = SIGQUIT ] && [ "$code" = 0 ] && ok "nginx stops gracefully on $signal (exit 0)" \
	|| fail "nginx stop: STOPSIGNAL $signal, exit code $code (137 = killed after the timeout)"

echo "all smoke tests passed"
images=$(docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}')
grep -E '^drydock/(base|postgres|redis|rust|node|runtime|nginx):' <<<"$images" | sort
