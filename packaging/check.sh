#!/usr/bin/env bash
# The packaging checks CI runs: build the .deb and .rpm, lint the .deb
# (lintian: no errors, and nothing about manual pages), inspect the .rpm,
# check the manual pages (they render) and shell completions (bash loads
# them) both packages ship, verify the unit offline (systemd-analyze verify:
# no output allowed; security: "OK" or better), and run the package under a
# real systemd (packaging/test-systemd.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# The packages are built in the default target dir (packaging/build.sh); the
# second `cargo deb` below must look there too.
unset CARGO_TARGET_DIR

need=()
command -v lintian >/dev/null || need+=(lintian)
command -v rpm >/dev/null || need+=(rpm)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v man >/dev/null || need+=(man-db)
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
# The pages are shipped and well formed: no no-manual-page, no groff or
# man warnings, nothing uncompressed.
if echo "$lintian_out" | grep -Eq 'manual-page|manpage|groff'; then
  echo "lintian reports manual page problems" >&2
  exit 1
fi

echo "== rpm contents"
files=$(rpm -qlp "$rpm" 2>/dev/null)
for f in /usr/bin/mailpulse /usr/lib/systemd/system/mailpulse.service /etc/mailpulse/mailpulse.toml \
         /usr/share/mailpulse/dashboards/mailpulse-soak-test.json /usr/share/mailpulse/prometheus/mailpulse-rules.yml; do
  echo "$files" | grep -qx "$f" || { echo "rpm lacks $f" >&2; exit 1; }
done
rpm -qp --configfiles "$rpm" 2>/dev/null | grep -qx /etc/mailpulse/mailpulse.toml || { echo "rpm: config not marked" >&2; exit 1; }

echo "== manual pages and completions"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A page for the command and one for each of its subcommands (as --help
# lists them: the binary's own definition), and the three completions.
pages=(mailpulse)
for sub in $(target/release/mailpulse --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p'); do
  [ "$sub" = help ] || pages+=("mailpulse-$sub")
done
[ ${#pages[@]} -gt 5 ] || { echo "too few subcommands found in --help: ${pages[*]}" >&2; exit 1; }
want_deb=(/usr/share/bash-completion/completions/mailpulse /usr/share/zsh/vendor-completions/_mailpulse
          /usr/share/fish/vendor_completions.d/mailpulse.fish)
want_rpm=(/usr/share/bash-completion/completions/mailpulse /usr/share/zsh/site-functions/_mailpulse
          /usr/share/fish/vendor_completions.d/mailpulse.fish)
for p in "${pages[@]}"; do
  want_deb+=("/usr/share/man/man1/$p.1.gz")
  want_rpm+=("/usr/share/man/man1/$p.1.gz")
done
deb_files=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
for f in "${want_deb[@]}"; do
  echo "$deb_files" | grep -qx "$f" || { echo "deb lacks $f" >&2; exit 1; }
done
for f in "${want_rpm[@]}"; do
  echo "$files" | grep -qx "$f" || { echo "rpm lacks $f" >&2; exit 1; }
done
dpkg-deb -x "$deb" "$work/deb"
for p in "${pages[@]}"; do
  page="$work/deb/usr/share/man/man1/$p.1.gz"
  warnings=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
  [ -z "$warnings" ] || { echo "man $p: $warnings" >&2; exit 1; }
  MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q '^NAME' || { echo "man $p does not render" >&2; exit 1; }
done
MANWIDTH=80 man -l "$work/deb/usr/share/man/man1/mailpulse-run.1.gz" 2>/dev/null | grep -q -- '--log-format' \
  || { echo "mailpulse-run(1) does not document --log-format" >&2; exit 1; }
# bash loads the completion and completes subcommands and flag values.
completed=$(bash -c 'source "$1" && complete -p mailpulse >/dev/null &&
  COMP_WORDS=(mailpulse ru) COMP_CWORD=1 && _mailpulse mailpulse ru mailpulse && echo "${COMPREPLY[*]}" &&
  COMP_WORDS=(mailpulse run --log-format "") COMP_CWORD=3 && _mailpulse mailpulse "" --log-format && echo "${COMPREPLY[*]}"' \
  _ "$work/deb/usr/share/bash-completion/completions/mailpulse")
[ "$completed" = "$(printf 'run\ntext json')" ] || { echo "bash completion: got $completed" >&2; exit 1; }
for pair in zsh:zsh/vendor-completions/_mailpulse fish:fish/vendor_completions.d/mailpulse.fish; do
  sh=${pair%%:*}
  if command -v "$sh" >/dev/null; then
    "$sh" -n "$work/deb/usr/share/${pair#*:}" || { echo "$sh cannot parse its completion" >&2; exit 1; }
  else
    echo "($sh not installed: its completion is checked for presence only)"
  fi
done

echo "== systemd-analyze"
unit_dir=$(mktemp -d)
trap 'rm -rf "$unit_dir" "$work"' EXIT
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
