#!/usr/bin/env bash
# Checks the Grafana dashboards in this directory, without a Grafana server:
#   - valid against the JSON Schema of Grafana's dashboard model (generated from the npm package
#     @grafana/schema with ts-json-schema-generator, validated with ajv), panel options and
#     field config against their plugins' types, plus the project's lint rules;
#   - every PromQL expression (panels, variables, annotations), $variables substituted, parsed
#     and evaluated by a real Prometheus started here on 127.0.0.1 with a fresh TSDB;
#   - with --scrape FILE: every mailpulse_* metric name the dashboards use is in that scrape,
#     and the queries are evaluated again on series from it (Prometheus scrapes the file).
#
# Usage: dashboards/check.sh [--scrape FILE]
#
# Installs what it needs: the npm packages pinned in check/package-lock.json into .check/
# (git-ignored, reused while the lock file is unchanged), and the Debian package prometheus if
# prometheus is missing (needs root). Loopback only; every step is bounded in time; the
# Prometheus it starts is stopped by PID and its temporary directory removed on exit.
# Exit status: 0 all checks passed, 1 a check failed, 2 the checks could not run.
set -euo pipefail

# Time limits, in seconds.
NPM_TIMEOUT=600
APT_TIMEOUT=900
PROMETHEUS_START_TIMEOUT=30
CHECK_TIMEOUT=600

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$HERE/.check"
DASHBOARDS=("$HERE"/mailpulse-*.json)

die() {
  echo "check.sh: $*" >&2
  exit 2
}

scrape=""
while [ $# -gt 0 ]; do
  case "$1" in
    --scrape)
      [ $# -ge 2 ] || die "--scrape needs a file (a saved /metrics scrape)"
      scrape="$(realpath "$2")"
      [ -r "$scrape" ] || die "cannot read scrape file $2"
      shift 2
      ;;
    -h | --help)
      sed -n '2,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument $1 (usage: check.sh [--scrape FILE])" ;;
  esac
done
[ -e "${DASHBOARDS[0]}" ] || die "no dashboards (mailpulse-*.json) in $HERE"

command -v node >/dev/null || die "node is missing (node 20 or later; Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm is missing (Debian: apt-get install npm)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node $(node --version) is too old: the pinned packages need node 20 or later"

mkdir -p "$CACHE"
# One check at a time per checkout: they share the cache.
exec 9>"$CACHE/.lock"
flock -w "$NPM_TIMEOUT" 9 || die "another check.sh holds $CACHE/.lock"

# --- npm packages, pinned by check/package-lock.json --------------------------------------
stamp="$(cat "$HERE/check/package.json" "$HERE/check/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$CACHE/node_modules/.mailpulse-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "npm: installing the pinned packages into ${CACHE#"$PWD/"}"
  rm -rf "$CACHE/node_modules"
  cp "$HERE/check/package.json" "$HERE/check/package-lock.json" "$CACHE/"
  if ! (cd "$CACHE" && timeout "$NPM_TIMEOUT" npm ci --no-audit --no-fund --loglevel=error); then
    die "npm ci failed (is the npm registry reachable?)"
  fi
  echo "$stamp" >"$CACHE/node_modules/.mailpulse-stamp"
fi

# --- Prometheus ------------------------------------------------------------------------------
if ! command -v prometheus >/dev/null; then
  [ "$(id -u)" = 0 ] || die "prometheus is missing; install the Debian package prometheus (needs root)"
  echo "apt: installing prometheus"
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Keep the package from starting a daemon on the default port.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  ok=1
  DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT" apt-get update -qq || ok=0
  [ "$ok" = 1 ] && { DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT" \
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null || ok=0; }
  [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$ok" = 1 ] || die "apt-get install prometheus failed"
  command -v prometheus >/dev/null || die "prometheus is still not on PATH after installing it"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/mailpulse-dashboards.XXXXXX")"
prom_pid=""
serve_pid=""
cleanup() {
  if [ -n "$serve_pid" ]; then
    kill "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
  if [ -n "$prom_pid" ] && kill -0 "$prom_pid" 2>/dev/null; then
    kill "$prom_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$prom_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$prom_pid" 2>/dev/null || true
    wait "$prom_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
printf 'global:\n  evaluation_interval: 1m\n' >"$tmp/prometheus.yml"
if [ -n "$scrape" ]; then
  # Serve the scrape on loopback and let Prometheus scrape it every second as job "mailpulse",
  # so that the queries are also evaluated against real series (vector matching and all).
  serve_port="$(free_port)"
  node -e 'const [file, port] = process.argv.slice(1);
    require("http").createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4" });
      res.end(require("fs").readFileSync(file));
    }).listen(Number(port), "127.0.0.1");' "$scrape" "$serve_port" &
  serve_pid=$!
  printf 'scrape_configs:\n  - job_name: mailpulse\n    scrape_interval: 1s\n    static_configs:\n      - targets: ["127.0.0.1:%s"]\n' \
    "$serve_port" >>"$tmp/prometheus.yml"
fi
prom_url=""
for _attempt in 1 2 3; do
  port="$(free_port)"
  prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
    --web.listen-address="127.0.0.1:$port" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
  prom_pid=$!
  for _ in $(seq $((PROMETHEUS_START_TIMEOUT * 4))); do
    if node -e 'fetch(process.argv[1],{signal:AbortSignal.timeout(2000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' \
      "http://127.0.0.1:$port/-/ready"; then
      prom_url="http://127.0.0.1:$port"
      break 2
    fi
    kill -0 "$prom_pid" 2>/dev/null || break
    sleep 0.2
  done
  # Not ready: the port may have been taken in between; try another one.
  kill "$prom_pid" 2>/dev/null || true
  wait "$prom_pid" 2>/dev/null || true
  prom_pid=""
done
if [ -z "$prom_url" ]; then
  cat "$tmp/prometheus.log" >&2 || true
  die "prometheus did not become ready on 127.0.0.1"
fi
echo "prometheus: $(prometheus --version 2>&1 | head -1 | sed 's/ (.*//') on $prom_url"

# --- The checks --------------------------------------------------------------------------------
args=(--cache "$CACHE" --prometheus "$prom_url")
[ -n "$scrape" ] && args+=(--scrape "$scrape" --with-data)
status=0
timeout "$CHECK_TIMEOUT" node "$HERE/check/check.mjs" "${args[@]}" "${DASHBOARDS[@]}" || status=$?
case "$status" in
  0) echo "dashboard check: ok" ;;
  1) exit 1 ;;
  124) die "the checks took longer than ${CHECK_TIMEOUT}s" ;;
  *) die "the checks could not run (exit $status)" ;;
esac
