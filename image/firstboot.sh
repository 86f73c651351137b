#!/usr/bin/env bash
# First boot of a device image: create the first admin with a generated one-time password and show it on
# the console once (a technician reads it there and must change it at first sign-in).
set -euo pipefail
out="$(/opt/appliance/venv/bin/appliance user add --config /etc/appliance/appliance.toml \
  --username admin --role system_admin)"
printf '\n  appliance first admin account:\n%s\n\n' "$out" > /dev/console
touch /var/lib/appliance/.firstboot-done
