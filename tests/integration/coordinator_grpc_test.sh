#!/usr/bin/env bash
# Stock gRPC clients (Python grpcio) against the coordinator: health, reflection, per-role
# tokens, requests with missing fields; and TLS with a self-signed certificate.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH/py"
kill_jobs_on_exit
py=/usr/bin/python3  # Debian's, which has python3-grpcio
protoc --python_out="$SCRATCH/py" -I "$SGT_SOURCE_DIR/proto" "$SGT_SOURCE_DIR"/proto/sgt/v1/*.proto
echo "client-secret-1" > "$SCRATCH/client.token"
echo "worker-secret-2" > "$SCRATCH/worker.token"
write_tiny_sweep "$SCRATCH/sweep.yaml"

start_coordinator "$SCRATCH/sgt.db" --client-token-file "$SCRATCH/client.token" \
  --worker-token-file "$SCRATCH/worker.token"
$py "$(dirname "$0")/coordinator_grpc_test.py" "$SCRATCH/py" "$SGT_COORDINATOR" "$SCRATCH/sgt.db" \
  client-secret-1 worker-secret-2 "$SCRATCH/sweep.yaml" || fail "gRPC checks failed"
# sgtctl with and without the token file.
expect_fail 5 "token" "$BIN/sgtctl" ls
SGT_TOKEN_FILE=$SCRATCH/client.token "$BIN/sgtctl" ls > "$SCRATCH/ls.txt" || fail "sgtctl ls with the token failed"
grep -q "tiny" "$SCRATCH/ls.txt" || fail "sgtctl ls does not list the sweep"
stop_coordinator

# Bad flags: mismatched token flags, an unreadable token file, a non-loopback address without
# tokens. Each exits 2 with the fix.
expect_fail 2 "give both or neither" "$BIN/sgt-coordinator" --client-token-file "$SCRATCH/client.token"
expect_fail 2 "cannot read" "$BIN/sgt-coordinator" --client-token-file /nonexistent \
  --worker-token-file "$SCRATCH/worker.token"
expect_fail 2 "not a loopback address" "$BIN/sgt-coordinator" --listen 0.0.0.0:0 --db "$SCRATCH/x.db"

# TLS with a self-signed certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$SCRATCH/key.pem" -out "$SCRATCH/cert.pem" 2> /dev/null
start_coordinator "$SCRATCH/tls.db" --tls-cert "$SCRATCH/cert.pem" --tls-key "$SCRATCH/key.pem"
SGT_TLS_CA=$SCRATCH/cert.pem "$BIN/sgtctl" ls > /dev/null || fail "sgtctl over TLS failed"
expect_fail 1 "" "$BIN/sgtctl" ls  # plaintext to a TLS port: unavailable
stop_coordinator
echo "PASS"
