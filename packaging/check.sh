#!/usr/bin/env bash
# The packaging checks CI runs: build the .deb and .rpm, lint the .deb
# (lintian: no errors allowed), inspect the .rpm, verify the unit offline
# (systemd-analyze verify: no output allowed; security: "OK" or better), and
# run the package under a real systemd (packaging/test-systemd.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# The packages are built in the default target dir (packaging/build.sh); the
# second `cargo deb` below must look there too.
unset CARGO_TARGET_DIR

need=()
command -v lintian >/dev/null || need+=(lintian)
command -v rpm >/dev/null || need+=(rpm)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bash packaging/build.sh
deb=$(ls -1 target/debian/mailpulse_*.deb | head -n 1)
rpm=$(ls -1 target/generate-rpm/mailpulse-*.rpm | head -n 1)

echo "== lintian $deb"
lintian_out=$(lintian --allow-root "$deb" || true)
echo "$lintian_out"
if echo "$lintian_out" | grep -q '^E:'; then
  echo "lintian reports errors" >&2
  exit 1
fi

echo "== rpm contents"
files=$(rpm -qlp "$rpm" 2>/dev/null)
for f in /usr/bin/mailpulse /usr/lib/systemd/system/mailpulse.service /etc/mailpulse/mailpulse.toml \
         /usr/share/mailpulse/dashboards/mailpulse-soak-test.json /usr/share/mailpulse/prometheus/mailpulse-rules.yml; do
  echo "$files" | grep -qx "$f" || { echo "rpm lacks $f" >&2; exit 1; }
done
rpm -qp --configfiles "$rpm" 2>/dev/null | grep -qx /etc/mailpulse/mailpulse.toml || { echo "rpm: config not marked" >&2; exit 1; }

echo "== systemd-analyze"
unit_dir=$(mktemp -d)
trap 'rm -rf "$unit_dir"' EXIT
# verify wants ExecStart to exist: point it at the binary just built.
sed "s|/usr/bin/mailpulse|$PWD/target/release/mailpulse|g" systemd/mailpulse.service > "$unit_dir/mailpulse.service"
verify=$(systemd-analyze verify --man=no "$unit_dir/mailpulse.service" 2>&1 || true)
if [ -n "$verify" ]; then
  echo "systemd-analyze verify: $verify" >&2
  exit 1
fi
score=$(systemd-analyze security --offline=yes "$unit_dir/mailpulse.service" 2>&1 | sed -n 's/.*Overall exposure level for mailpulse.service: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
echo "security exposure: $score"
case "$score" in
  *" OK"|*" SAFE") ;;
  *) echo "systemd-analyze security is not OK or better: $score" >&2; exit 1 ;;
esac

echo "== the package under a real systemd"
# cargo-deb clears old packages when it builds one, so keep the first aside.
cp "$deb" "$unit_dir/first.deb"
cargo deb --no-build --deb-revision 2 -o "$unit_dir/second.deb" >/dev/null
bash packaging/test-systemd.sh "$unit_dir/first.deb" "$unit_dir/second.deb"
