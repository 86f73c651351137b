#!/usr/bin/env bash
# First boot of a device image: create the first admin with a random one-time password and show it
# on the console once (a technician reads it there and changes it at first sign-in).
set -euo pipefail
pw="$(tr -dc 'abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY346789' </dev/urandom | head -c 14)"
printf '%s' "$pw" | /opt/appliance/venv/bin/appliance user add --config /etc/appliance/appliance.toml \
  --username admin --role system_admin --password-stdin --must-change-password
printf '\n  appliance first admin: admin / %s (one-time; change it at first sign-in)\n\n' "$pw" > /dev/console
touch /var/lib/appliance/.firstboot-done
