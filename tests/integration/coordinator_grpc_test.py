"""Stock gRPC clients against a live sgt-coordinator (driven by coordinator_grpc_test.sh).

Uses Python's grpcio with messages generated from proto/sgt/v1: the standard health service and
server reflection answer, tokens are enforced per role, and requests with missing fields get
INVALID_ARGUMENT while the daemon keeps serving and the store stays as it was.
"""
import sqlite3
import sys

import grpc

sys.path.insert(0, sys.argv[1])  # generated modules
from sgt.v1 import coordinator_pb2 as cp, types_pb2 as tp, worker_pb2 as wp  # noqa: E402

addr, db, client_token, worker_token = sys.argv[2:6]
ch = grpc.insecure_channel(addr)


def call(service, method, req, resp_cls, token=None):
    fn = ch.unary_unary(f"/sgt.v1.{service}/{method}", request_serializer=lambda m: m.SerializeToString(),
                        response_deserializer=resp_cls.FromString)
    md = [("authorization", f"Bearer {token}")] if token else None
    return fn(req, metadata=md, timeout=10)


def code_of(service, method, req, resp_cls, token=None):
    try:
        call(service, method, req, resp_cls, token)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def counts():
    c = sqlite3.connect(db)
    return [c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("sweeps", "runs", "run_events", "workers", "entropy", "telemetry_batches")]


failures = []


def expect(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got}, want {want}")
    else:
        print(f"ok: {what}")


# Health: the standard service, empty service name = the whole server.
health = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                        response_deserializer=lambda b: b)
expect("health check SERVING", health(b"", timeout=5), b"\x08\x01")
expect("health of sgt.v1.CoordinatorService", health(b"\x0a\x19sgt.v1.CoordinatorService", timeout=5),
       b"\x08\x01")

# Reflection: list_services (field 7) on the v1alpha stream.
refl = ch.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                        request_serializer=lambda b: b, response_deserializer=lambda b: b)
answer = b"".join(refl(iter([b"\x3a\x00"]), timeout=5))
for svc in (b"sgt.v1.CoordinatorService", b"sgt.v1.WorkerService", b"grpc.health.v1.Health"):
    expect(f"reflection lists {svc.decode()}", svc in answer, True)

before = counts()
sweep = open(sys.argv[6]).read()

# Tokens: none, the wrong role's, an unknown one; nothing is stored by refused calls.
submit = cp.SubmitSweepRequest(yaml=sweep, source_name="t.yaml")
expect("submit without a token", code_of("CoordinatorService", "SubmitSweep", submit, cp.SubmitSweepResponse)[0],
       grpc.StatusCode.UNAUTHENTICATED)
expect("submit with the worker token",
       code_of("CoordinatorService", "SubmitSweep", submit, cp.SubmitSweepResponse, worker_token)[0],
       grpc.StatusCode.PERMISSION_DENIED)
expect("submit with an unknown token",
       code_of("CoordinatorService", "SubmitSweep", submit, cp.SubmitSweepResponse, "not-a-token")[0],
       grpc.StatusCode.UNAUTHENTICATED)
reg = wp.RegisterRequest(name="n1", devices=[tp.Device(id="cpu:0", kind="cpu")])
expect("register with the client token",
       code_of("WorkerService", "Register", reg, wp.RegisterResponse, client_token)[0],
       grpc.StatusCode.PERMISSION_DENIED)
expect("register without a token", code_of("WorkerService", "Register", reg, wp.RegisterResponse)[0],
       grpc.StatusCode.UNAUTHENTICATED)
expect("store unchanged by refused calls", counts(), before)

# Missing fields: INVALID_ARGUMENT naming the field, nothing stored.
for what, service, method, req, resp, token, field in [
    ("SubmitSweep without yaml", "CoordinatorService", "SubmitSweep", cp.SubmitSweepRequest(),
     cp.SubmitSweepResponse, client_token, "yaml"),
    ("GetRun without run_id", "CoordinatorService", "GetRun", cp.GetRunRequest(), cp.GetRunResponse,
     client_token, "run_id"),
    ("Fork without from_step", "CoordinatorService", "Fork", cp.ForkRequest(run_id="r1"),
     cp.ForkResponse, client_token, "from_step"),
    ("QueryTelemetry without kind", "CoordinatorService", "QueryTelemetry",
     cp.TelemetryQuery(target="r1"), cp.TelemetryPage, client_token, "kind"),
    ("Cancel without target", "CoordinatorService", "Cancel", cp.ActionRequest(), cp.ActionResponse,
     client_token, "target"),
    ("Edit without changes", "CoordinatorService", "Edit", cp.EditRequest(target="s1"), cp.EditResponse,
     client_token, "nothing to change"),
    ("Register without devices", "WorkerService", "Register", wp.RegisterRequest(name="n1"),
     wp.RegisterResponse, worker_token, "devices"),
]:
    if method == "QueryTelemetry":
        fn = ch.unary_stream("/sgt.v1.CoordinatorService/QueryTelemetry",
                             request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=cp.TelemetryPage.FromString)
        try:
            list(fn(req, metadata=[("authorization", f"Bearer {token}")], timeout=10))
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            code, details = e.code(), e.details()
    else:
        code, details = code_of(service, method, req, resp, token)
    expect(what, code, grpc.StatusCode.INVALID_ARGUMENT)
    expect(f"{what}: message names '{field}'", field in details, True)
expect("store unchanged by bad requests", counts(), before)

# A session whose first message is not a hello is refused; the daemon keeps serving.
sess = ch.stream_stream("/sgt.v1.WorkerService/Session", request_serializer=lambda m: m.SerializeToString(),
                        response_deserializer=wp.CoordinatorMessage.FromString)
try:
    list(sess(iter([wp.WorkerMessage(heartbeat=wp.Heartbeat())]),
              metadata=[("authorization", f"Bearer {worker_token}")], timeout=10))
    code = grpc.StatusCode.OK
except grpc.RpcError as e:
    code = e.code()
expect("session without hello", code, grpc.StatusCode.INVALID_ARGUMENT)

# And with the right token everything works.
r = call("CoordinatorService", "SubmitSweep", submit, cp.SubmitSweepResponse, client_token)
expect("submit with the client token stores the runs", len(r.runs), 3)
expect("still serving", len(call("CoordinatorService", "ListSweeps", cp.ListSweepsRequest(),
                                 cp.ListSweepsResponse, client_token).sweeps), 1)

if failures:
    print("\n".join("FAIL " + f for f in failures))
    sys.exit(1)
