#!/bin/sh
# Turns EOMATCH_API_KEYS ("name:key,name:key" from .env) into the nginx map of named keys.
set -eu
case "${EOMATCH_API_KEYS:-}" in
  *change-me*|*changeme*|*change_me*)
    echo "40-eomatch-keys: refusing to start: EOMATCH_API_KEYS still holds the placeholder key of .env.example;" \
      "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'" >&2
    exit 1 ;;
esac
out=${EOMATCH_KEYS_CONF:-/etc/nginx/eomatch/keys.conf}
mkdir -p "$(dirname "$out")"
{
  echo 'map $http_authorization $eomatch_key_name {'
  echo '    default "";'
  echo "${EOMATCH_API_KEYS:-}" | tr ',' '\n' | while IFS=: read -r name key; do
    [ -n "$name" ] && [ -n "$key" ] && printf '    "Bearer %s" "%s";\n' "$key" "$name"
  done
  echo '}'
} > "$out"
chmod 600 "$out"
