#!/bin/sh
# Starts redis_exporter under whichever name the image ships it (upstream image:
# /redis_exporter; Debian package: prometheus-redis-exporter). Address and password come
# from REDIS_ADDR / REDIS_PASSWORD, which both builds read.
set -eu
for b in /redis_exporter redis_exporter prometheus-redis-exporter; do
  if command -v "$b" >/dev/null 2>&1; then exec "$b" -web.listen-address=:9121; fi
done
echo "start-exporter: no redis_exporter in this image" >&2
exit 1
