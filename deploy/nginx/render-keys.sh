#!/bin/sh
# Turns EOMATCH_API_KEYS ("name:key,name:key" from .env) into the nginx map of named keys.
set -eu
mkdir -p /etc/nginx/eomatch
out=/etc/nginx/eomatch/keys.conf
{
  echo 'map $http_authorization $eomatch_key_name {'
  echo '    default "";'
  echo "${EOMATCH_API_KEYS:-}" | tr ',' '\n' | while IFS=: read -r name key; do
    [ -n "$name" ] && [ -n "$key" ] && printf '    "Bearer %s" "%s";\n' "$key" "$name"
  done
  echo '}'
} > "$out"
chmod 600 "$out"
