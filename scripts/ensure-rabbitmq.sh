#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers at 127.0.0.1:5672 for the tests (or at PIXLINE_TEST_AMQP).
# Running already: nothing to do. Installed but stopped: start it. Not installed: install Debian's
# package when we are root with apt-get, otherwise say exactly how.
set -euo pipefail
host=127.0.0.1 port=5672
if [[ -n "${PIXLINE_TEST_AMQP:-}" ]]; then
  hostport=$(python3 -c 'import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p.hostname or "127.0.0.1", p.port or 5672)' "$PIXLINE_TEST_AMQP")
  read -r host port <<<"$hostport"
fi
listening() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
if listening; then exit 0; fi
if [[ "$host" != 127.0.0.1 && "$host" != localhost ]]; then
  echo "RabbitMQ at $host:$port does not answer; start it or unset PIXLINE_TEST_AMQP" >&2; exit 1
fi
if ! command -v rabbitmq-server >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "RabbitMQ is not installed: installing Debian's rabbitmq-server" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  else
    cat >&2 <<'MSG'
RabbitMQ is needed by the queue tests and is not installed. Install and start it, e.g.
  sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached     (Debian/Ubuntu)
  brew install rabbitmq && brew services start rabbitmq                      (macOS)
  docker run -d -p 5672:5672 rabbitmq:3                                      (anywhere with Docker)
or point the tests at another broker with PIXLINE_TEST_AMQP=amqp://user:pass@host:5672/
MSG
    exit 1
  fi
fi
echo "starting rabbitmq-server" >&2
rabbitmq-server -detached >/dev/null 2>&1 || true
for _ in $(seq 1 60); do
  if listening; then exit 0; fi
  sleep 1
done
echo "rabbitmq-server did not start listening on $host:$port within 60 s; see /var/log/rabbitmq/" >&2
exit 1
