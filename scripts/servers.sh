#!/usr/bin/env bash
# Starts (or stops) the cache servers the remote tier is tested and benchmarked against,
# on loopback ports nothing else uses: nginx with WebDAV PUT (the Bazel HTTP cache layout)
# and redis-server, both from Debian's packages (scripts/setup.sh installs them).
#
#   scripts/servers.sh start DIR   # starts both; writes DIR/env with
#                                  #   NEXXO_TEST_HTTP_URL=http://127.0.0.1:PORT/cache
#                                  #   NEXXO_TEST_REDIS_URL=redis://127.0.0.1:PORT
#                                  # and their TLS ports (a test CA made with openssl):
#                                  #   NEXXO_TEST_HTTPS_URL=https://localhost:PORT/cache
#                                  #   NEXXO_TEST_REDISS_URL=rediss://localhost:PORT
#                                  #   NEXXO_TEST_CA_FILE=DIR/pki/ca.pem
#   scripts/servers.sh stop DIR    # stops both
set -euo pipefail
cmd="${1:?usage: servers.sh start|stop DIR}"
dir="${2:?usage: servers.sh start|stop DIR}"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 1 250); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.02
  done
  echo "servers.sh: $2 did not start on port $1 (see $dir)" >&2
  return 1
}

case "$cmd" in
start)
  mkdir -p "$dir/nginx/data" "$dir/nginx/tmp" "$dir/redis"
  dir="$(cd "$dir" && pwd)"
  http_port="$(free_port)"
  redis_port="$(free_port)"
  https_port="$(free_port)"
  rediss_port="$(free_port)"
  # A test CA and a certificate for localhost and 127.0.0.1, signed by it.
  pki="$dir/pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/ca.key" \
    -out "$pki/ca.pem" -days 30 -subj "/CN=nexxo test CA" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/server.key" \
    -out "$pki/server.csr" -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$pki/server.ext"
  openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -out "$pki/server.pem" -days 30 -extfile "$pki/server.ext" 2>/dev/null
  cat >"$dir/nginx/nginx.conf" <<CONF
daemon on;
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $dir/nginx/tmp;
  proxy_temp_path $dir/nginx/tmp;
  fastcgi_temp_path $dir/nginx/tmp;
  uwsgi_temp_path $dir/nginx/tmp;
  scgi_temp_path $dir/nginx/tmp;
  server {
    listen 127.0.0.1:$http_port;
    root $dir/nginx/data;
    client_max_body_size 300m;
    location / { dav_methods PUT DELETE; create_full_put_path on; dav_access user:rw; }
  }
  server {
    listen 127.0.0.1:$https_port ssl;
    ssl_certificate $pki/server.pem;
    ssl_certificate_key $pki/server.key;
    root $dir/nginx/data;
    client_max_body_size 300m;
    location / { dav_methods PUT DELETE; create_full_put_path on; dav_access user:rw; }
  }
}
CONF
  # Run as the invoking user (as root, nginx would hand its workers to nobody, who
  # cannot write the data directory).
  if [ "$(id -u)" -eq 0 ]; then sed -i '1i user root root;' "$dir/nginx/nginx.conf"; fi
  /usr/sbin/nginx -e "$dir/nginx/error.log" -p "$dir/nginx" -c "$dir/nginx/nginx.conf"
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$dir/redis" \
    --tls-port "$rediss_port" --tls-cert-file "$pki/server.pem" --tls-key-file "$pki/server.key" --tls-auth-clients no \
    --daemonize yes --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log"
  wait_port "$http_port" nginx
  wait_port "$redis_port" redis-server
  wait_port "$https_port" "nginx (TLS)"
  wait_port "$rediss_port" "redis-server (TLS)"
  cat >"$dir/env" <<ENV
export NEXXO_TEST_HTTP_URL=http://127.0.0.1:$http_port/cache
export NEXXO_TEST_REDIS_URL=redis://127.0.0.1:$redis_port
export NEXXO_TEST_HTTPS_URL=https://localhost:$https_port/cache
export NEXXO_TEST_REDISS_URL=rediss://localhost:$rediss_port
export NEXXO_TEST_CA_FILE=$pki/ca.pem
ENV
  echo "servers.sh: nginx on 127.0.0.1:$http_port (TLS $https_port), redis-server on 127.0.0.1:$redis_port (TLS $rediss_port)"
  ;;
stop)
  # Waits (up to 5 s each) for them to exit: redis writes its dump into its directory as
  # it stops, and the caller removes that directory next.
  for pidfile in "$dir/nginx/nginx.pid" "$dir/redis/redis.pid"; do
    if [ -f "$pidfile" ]; then
      pid="$(cat "$pidfile")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
  done
  ;;
*)
  echo "usage: servers.sh start|stop DIR" >&2
  exit 2
  ;;
esac
