#!/bin/bash
# The runbooks' "Daily Health Check Procedure" as users run it today: one probe after another,
# a new process per probe. The shell baseline for bench/daily_check.py.
#   API_URL      base URL of the API            (default http://127.0.0.1:8000)
#   PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD  the usual libpq variables
#   REDIS_HOST REDIS_PORT REDISCLI_AUTH         (default 127.0.0.1 6379, no password)
set -u
API_URL=${API_URL:-http://127.0.0.1:8000}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
echo "=== Health Check ==="
echo "[API Health]";  curl -s -m 5 "$API_URL/health" | jq '.' > /dev/null && echo "ok" || echo "FAILED"
echo "[Database]";    psql -c "SELECT version();" > /dev/null && echo "ok" || echo "FAILED"
echo "[Redis Cache]"; redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping > /dev/null && echo "ok" || echo "FAILED"
echo "[Disk Space]";  df -h | grep -E '(Filesystem|/dev/)' > /dev/null
echo "[API Performance]"; curl -s -m 5 -o /dev/null -w "%{time_total}s\n" "$API_URL/v1/wallets"
echo "[Failed Transactions - Last 24h]"
psql -At -c "SELECT COUNT(*) FROM transactions WHERE status='failed' AND created_at > NOW() - INTERVAL '24 hours';"
echo "[Open Compliance Alerts]"
psql -At -c "SELECT COUNT(*) FROM compliance_alerts WHERE status='open';"
echo "=== Health Check Complete ==="
