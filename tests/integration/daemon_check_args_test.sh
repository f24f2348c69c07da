#!/usr/bin/env bash
# --check-args (services/common/daemon_args.h) on both daemons: a command line they accept exits 0
# at once, without reading the token, certificate or CA files it names, creating the store, its
# lock, the worker's directories or a port file, or probing GPUs; a bad one exits 2 with the
# same message as without --check-args. deploy/k8s's test relies on this to check the manifests'
# command lines.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
S=$SCRATCH
coord() { timeout 20 "$BIN/sgt-coordinator" "$@"; }  # functions: $BIN may hold spaces
worker() { timeout 20 "$BIN/sgt-worker" "$@"; }

# Accepted: a cluster's coordinator line whose files do not exist here.
coord --check-args --listen 0.0.0.0:7070 --db "$S/store/sgt.db" --lease-seconds 30 \
  --client-token-file "$S/secrets/client.token" --worker-token-file "$S/secrets/worker.token" \
  --tls-cert "$S/secrets/tls.crt" --tls-key "$S/secrets/tls.key" --log-level warn \
  --metrics-listen 0.0.0.0:9464 --port-file "$S/port" > "$S/out.txt" ||
  fail "sgt-coordinator --check-args refused a valid command line"
grep -q "sgt-coordinator: arguments accepted" "$S/out.txt" || fail "no 'arguments accepted' line"
# ... with an existing store directory: nothing is created in it.
mkdir "$S/db"
coord --check-args --db "$S/db/sgt.db" --port-file "$S/db/port" > /dev/null || fail "refused --db"
[[ -z $(ls -A "$S/db") ]] || fail "--check-args created $(ls -A "$S/db") beside the store"
[[ ! -e $S/store && ! -e $S/port ]] || fail "--check-args created files"

# Refused, each with its usual message and exit status 2.
expect_fail 2 "unknown argument '--bogus'" coord --check-args --bogus
expect_fail 2 "not a loopback address and no tokens" coord --check-args --listen 0.0.0.0:7070
expect_fail 2 "go together" coord --check-args --client-token-file "$S/c"
expect_fail 2 "--tls-cert and --tls-key go together" coord --check-args --tls-cert "$S/c"
expect_fail 2 "--lease-seconds needs" coord --check-args --lease-seconds 0
expect_fail 2 "--metrics-port-file needs --metrics-listen" coord --check-args --metrics-port-file p
expect_fail 2 "--log-level 'loud'" coord --check-args --log-level loud
# Without --check-args the files are read, as before.
expect_fail 2 "--client-token-file .*cannot read it" coord --listen 0.0.0.0:7070 \
  --client-token-file "$S/c" --worker-token-file "$S/w" --db "$S/db/sgt.db"

# The worker: a GPU node's line on a machine without GPUs, files and directories absent.
worker --check-args --coordinator sgt-coordinator:7070 --devices cuda --name node-a \
  --checkpoint-root "$S/shared/ckpt" --work-dir "$S/work" --token-file "$S/secrets/worker.token" \
  --tls-ca "$S/secrets/ca.crt" --metrics-listen 0.0.0.0:9465 --rendezvous-ports 29500-29599 \
  --train-program "$S/nowhere/sgt-train" > "$S/out.txt" ||
  fail "sgt-worker --check-args refused a valid command line"
grep -q "sgt-worker: arguments accepted" "$S/out.txt" || fail "no 'arguments accepted' line"
[[ ! -e $S/shared && ! -e $S/work ]] || fail "sgt-worker --check-args created its directories"
for spec in cuda:0,3 cpu:4; do
  worker --check-args --devices "$spec" --checkpoint-root c --work-dir w > /dev/null ||
    fail "--check-args refused --devices $spec"
done
expect_fail 2 "--devices gpu: unknown device kind" worker --check-args --devices gpu \
  --checkpoint-root c --work-dir w
expect_fail 2 "cpu needs a slot count" worker --check-args --devices cpu:0 --checkpoint-root c \
  --work-dir w
expect_fail 2 "GPU 1 is listed twice" worker --check-args --devices cuda:1,1 --checkpoint-root c \
  --work-dir w
expect_fail 2 "--work-dir is required" worker --check-args --checkpoint-root c
expect_fail 2 "--rendezvous-ports 9-1" worker --check-args --rendezvous-ports 9-1 \
  --checkpoint-root c --work-dir w
expect_fail 2 "unknown argument 'extra'" worker --check-args extra
# Without --check-args the GPUs are probed: this build has none it can use (CPU build, or no GPU).
if [[ ! -e /dev/nvidia0 ]]; then
  expect_fail 2 "--devices cuda: " worker --devices cuda --checkpoint-root "$S/c" --work-dir "$S/w"
fi
echo "daemon_check_args_test: ok"
