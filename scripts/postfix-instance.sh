# scripts/postfix-instance.sh: shell functions for a private Postfix instance that lives entirely
# under one directory DIR (config DIR/etc, queue DIR/spool, data DIR/data, log DIR/postfix.log)
# and runs its own master (`postfix -c DIR/etc`) beside the machine's Postfix, which it leaves
# alone. Sourced by scripts/postfix-backend (the tests' backend) and scripts/postfix-sender (a
# sending MTA for end-to-end tests); not a command of its own.

# The main.cf lines every private instance under $1 starts with: written whole, from nothing the
# admin configured (whatever /etc/postfix/main.cf says does not reach a test). No service is
# chrooted (no chroot to populate) and there is no local delivery (no aliases to build).
pfi_main_head() {
  local dir="$1"
  echo "compatibility_level = 3.6"
  echo "queue_directory = $dir/spool"
  echo "data_directory = $dir/data"
  echo "maillog_file = $dir/postfix.log"
  echo "maillog_file_prefixes = $dir"  # the default allows only /var and /dev/stdout
  echo "mydestination ="
  echo "alias_maps ="
  echo "alias_database ="
  echo "biff = no"
}

# Postfix's internal services (master.cf lines), unchrooted; tlsmgr and tlsproxy serve TLS
# (tlsproxy carries an smtp client's TLS connections that are reused, smtp_tls_connection_reuse).
pfi_master_services() {
  cat <<'EOF'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
tlsproxy  unix  -       -       n       -       0       tlsproxy
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

# Writes stdin to file $1 by rename, so that a reader never sees half of it.
pfi_write() {
  local tmp
  tmp="$(mktemp "$(dirname "$1")/.$(basename "$1").XXXXXX")"
  cat >"$tmp"
  chmod 0644 "$tmp"
  mv "$tmp" "$1"
}

# Directories of the instance under $1 (config, queue, data).
pfi_dirs() {
  install -d -m 0755 "$1" "$1/etc" "$1/spool"
  install -d -o postfix -m 0700 "$1/data"
}

# A self-signed certificate for CN $3 in files $1 (certificate) and $2 (key, mode 0600), made
# once: an existing pair is kept, so every caller and every restart sees the same certificate.
pfi_self_signed_cert() {
  local cert="$1" key="$2" cn="$3"
  [ -s "$cert" ] && [ -s "$key" ] && return 0
  install -d -m 0755 "$(dirname "$cert")"
  install -d -m 0755 "$(dirname "$key")"
  local tmpkey tmpcert
  tmpkey="$(mktemp "$(dirname "$key")/.key.XXXXXX")"
  tmpcert="$(mktemp "$(dirname "$cert")/.cert.XXXXXX")"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$cn" \
    -keyout "$tmpkey" -out "$tmpcert" >/dev/null 2>&1
  chmod 0600 "$tmpkey"
  chmod 0644 "$tmpcert"
  mv "$tmpkey" "$key"
  mv "$tmpcert" "$cert"
}

# A digest of the configuration in config directory $1 (to tell whether it changed).
pfi_digest() { { cat "$1/main.cf" "$1/master.cf" 2>/dev/null || true; } | md5sum | cut -d' ' -f1; }

# Starts the instance of config directory $1, or restarts it when its digest is no longer $2.
# A stop/start rather than a reload: the listen backlog is fixed when the master starts.
pfi_start() {
  local conf="$1" before="$2"
  postfix -c "$conf" check
  if postfix -c "$conf" status >/dev/null 2>&1; then
    [ "$before" != "$(pfi_digest "$conf")" ] || return 0
    postfix -c "$conf" stop >/dev/null 2>&1 || true
    for _ in $(seq 100); do postfix -c "$conf" status >/dev/null 2>&1 || break; sleep 0.1; done
  fi
  postfix -c "$conf" start >/dev/null 2>&1
}

# Stops the instance of config directory $1, if it runs.
pfi_stop() {
  if [ -f "$1/main.cf" ] && postfix -c "$1" status >/dev/null 2>&1; then
    postfix -c "$1" stop >/dev/null 2>&1
  fi
}

# Waits (20 s deadline) until every 127.0.0.1 port after the log file $1 accepts connections.
pfi_wait_ports() {
  local log="$1" port deadline=$((SECONDS + 20))
  shift
  for port in "$@"; do
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        echo "postfix: 127.0.0.1:$port does not accept connections; see $log" >&2
        tail -n 20 "$log" >&2 || true
        return 1
      fi
      sleep 0.1
    done
  done
}
