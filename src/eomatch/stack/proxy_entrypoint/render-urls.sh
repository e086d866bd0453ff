#!/bin/sh
# Turns EOMATCH_PUBLIC_URL and EOMATCH_INTERNAL_URL (.env) into the addresses the
# proxy's listeners hand to the APIs: every link and the schema URL are built from
# them, never from the Host or Forwarded headers a client sends.
set -euf  # -f: a host like [::1] is not a glob
dir=${EOMATCH_URLS_DIR:-/etc/nginx/eomatch}
mkdir -p "$dir"

render() {  # VARIABLE URL FILE
  parts=$(printf '%s' "$2" | sed -nE 's#^(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:([0-9]{1,5}))?/?$#\1 \2 \4#p')
  if [ -z "$parts" ]; then
    echo "41-eomatch-urls: refusing to start: $1='$2' is not http(s)://host[:port] without a path" >&2
    exit 1
  fi
  # shellcheck disable=SC2086
  set -- "$1" "$2" "$3" $parts
  port=${6:-}
  if [ -z "$port" ]; then
    if [ "$4" = https ]; then port=443; else port=80; fi
  fi
  printf 'set $eomatch_proto "%s";\nset $eomatch_host "%s";\nset $eomatch_port "%s";\n' "$4" "$5" "$port" > "$3"
}

render EOMATCH_PUBLIC_URL "${EOMATCH_PUBLIC_URL:-}" "$dir/public-url.conf"
render EOMATCH_INTERNAL_URL "${EOMATCH_INTERNAL_URL:-}" "$dir/internal-url.conf"
