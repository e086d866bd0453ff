#!/bin/sh
# Turns EOMATCH_API_KEYS ("name:key,name:key" from .env) into the nginx map of named keys:
# case-sensitive regexes with the key escaped (nginx compares map strings ignoring case).
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
    [ -z "$name$key" ] && continue
    if ! printf '%s' "$name" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' ||
       ! printf '%s' "$key" | grep -Eq '^[A-Za-z0-9._~+/=-]{16,512}$'; then
      echo "40-eomatch-keys: refusing to start: EOMATCH_API_KEYS entry '$name' is not name:key" \
        "(name: letters, digits, . _ -; key: 16-512 of letters, digits, . _ ~ + / = -)" >&2
      exit 1
    fi
    printf '    "~^[Bb][Ee][Aa][Rr][Ee][Rr] %s$" "%s";\n' "$(printf '%s' "$key" | sed 's/[^A-Za-z0-9]/\\&/g')" "$name"
  done
  echo '}'
} > "$out"
chmod 600 "$out"
