# Sourced by e2e/controlplane/up.sh and e2e/node/up.sh: how both start their
# processes, wait for them, and issue certificates and kubeconfigs, so the
# node's kubelet and kube-proxy are made exactly as the control plane is.
#
# Expects: $dir (the state directory: logs/, pids), $pki (the CA lives there),
# $address and $api_port (the apiserver), and a `fail MESSAGE LOGNAME`
# function of the caller's that reports and cleans up.

start() { # start NAME CMD...: runs in the background, logging to DIR/logs/NAME.log, PID recorded for down.sh
  local name=$1; shift
  "$@" >"$dir/logs/$name.log" 2>&1 &
  echo "$! $name" >>"$dir/pids"
}

ready() { # ready NAME SECONDS WHAT CMD...: polls CMD until it succeeds, failing when NAME exits or time runs out
  local name=$1 secs=$2 what=$3; shift 3
  local pid end=$(( $(date +%s) + secs ))
  pid=$(awk -v n="$name" '$2 == n { print $1 }' "$dir/pids")
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "$name exited" "$name"
    [ "$(date +%s)" -lt "$end" ] || fail "$name: $what not within ${secs}s" "$name"
    sleep 0.5
  done
}

issue() { # issue NAME SUBJECT [SAN]: a client/server certificate from the CA in $pki
  openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
  # Extensions make it an X.509 v3 certificate: rustls (the operator's client) refuses v1.
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' >"$pki/$1.ext"
  if [ -n "${3:-}" ]; then printf 'subjectAltName=%s\n' "$3" >>"$pki/$1.ext"; fi
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
    -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
}

kubeconfig() { # kubeconfig FILE CERT: a kubeconfig for the apiserver, as the holder of certificate CERT
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://$address:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: local
  context: {cluster: local, user: $2, namespace: default}
current-context: local
KC
}
