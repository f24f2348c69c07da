#!/usr/bin/python3
"""The vanilla libsgt model and training step, written in plain PyTorch, as a speed reference.

It is the model of libsgt/torch/model.cc and the step of libsgt/torch/trainer.cc, op for op:
fused W_QKV [3d, d] (rows: q heads, k heads, v heads), rotate-half RoPE on q and k, causal
attention as matmul(q * scale, k^T) + masked_fill_ + softmax + matmul v (LibTorch 1.13 has no
fused attention), RMSNorm x * rsqrt(mean(x^2) + eps) * w, SwiGLU with a fused W_gate_up
[2 d_ff, d], untied embedding and LM head, no biases; cross-entropy over [-1, V] logits;
gradient accumulation over micro-batches; grad-norm clip; AdamW (single-tensor, the 1.13
default, as LibTorch's C++ AdamW) with weight decay on matrices only; the same cosine schedule.
No torch.compile, no SDPA (1.13 has neither for this).

Run it with Debian's python3-torch (/usr/bin/python3), which is the same LibTorch 1.13 shared
library that sgt-train links, so the comparison measures the two front ends, not two builds:

  /usr/bin/python3 bench/pytorch_reference.py --config bench/configs/vanilla.yaml --steps 12
  /usr/bin/python3 bench/pytorch_reference.py --check-checkpoint RUN/checkpoints/step-*.sgtckpt \
      --check-summary RUN/summary.json --val data/brown/val.u16

The first prints one JSON line like `sgt-train --bench`: step_ms, tokens_per_second,
achieved_gflops (sgt-method.md §6 formula), flops_per_step, peak_rss_mb, param_count. The
second loads the weights of a libsgt checkpoint into this model, recomputes the run's final
validation loss on the same windows, and prints both losses and both parameter counts: the
check that this is the same model (bench/run-benchmarks runs it).
"""

import argparse
import ctypes
import io
import json
import math
import os
import resource
import struct
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import yaml

# Defaults of docs/config.md for the keys this reference uses.
MODEL_DEFAULTS = dict(layers=4, d_model=128, heads=4, d_ff=512, context=128, vocab_size=4096,
                      norm_eps=1e-6, init_std=0.02, rope_theta=10000.0)
TRAIN_DEFAULTS = dict(steps=300, batch_size=16, micro_batch_size=16, lr=1e-3, warmup_steps=30,
                      min_lr_ratio=0.1, weight_decay=0.1, betas=[0.9, 0.95], eps=1e-8,
                      grad_clip=1.0, seed=1, threads=1)


def load_config(path):
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    return config_from_dict(raw)


def config_from_dict(raw):
    model = dict(MODEL_DEFAULTS, **(raw.get("model") or {}))
    train = dict(TRAIN_DEFAULTS, **(raw.get("train") or {}))
    if raw.get("variant", "sgt") != "vanilla":
        sys.exit("pytorch_reference.py: only variant: vanilla has a reference; pass "
                 "bench/configs/vanilla.yaml")
    return model, train


def set_threads(threads):
    """Sets LibTorch's OpenMP threads and OpenBLAS's own pool, as libsgt/torch/threads.cc does."""
    torch.set_num_threads(threads)
    blas = None
    with open("/proc/self/maps") as maps:
        paths = [line.split()[-1] for line in maps if ".so" in line]
    for name in ("libopenblas", "libblas.so"):
        blas = next((p for p in paths if name in os.path.basename(p)), None)
        if blas:
            break
    if blas is None:
        return -1
    lib = ctypes.CDLL(blas)  # already loaded by torch: the same instance
    if not hasattr(lib, "openblas_set_num_threads"):
        return -1
    lib.openblas_set_num_threads(ctypes.c_int(threads))
    return lib.openblas_get_num_threads()


def keep_freed_memory_mapped():
    """The glibc settings of libsgt/torch/threads.cc KeepFreedMemoryMapped, through ctypes."""
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
    ok = libc.mallopt(M_MMAP_MAX, 0)
    ok &= libc.mallopt(M_TRIM_THRESHOLD, -1)
    ok &= libc.mallopt(M_TOP_PAD, 256 << 20)
    if not ok:
        sys.exit("pytorch_reference.py: mallopt refused a setting")


class Reference(torch.nn.Module):
    """libsgt's TransformerImpl with an empty LoopPlan (vanilla), parameter names included."""

    def __init__(self, m):
        super().__init__()
        self.m = m
        d, ff, V, sd = m["d_model"], m["d_ff"], m["vocab_size"], m["init_std"]
        P = torch.nn.Parameter
        # Same creation order as the C++ constructor, so a shared seed gives the same draws.
        self.embed = P(torch.randn(V, d) * sd)
        self.layer_names = []
        for l in range(m["layers"]):
            p = "layer%d_" % l
            setattr(self, p + "attn_norm", P(torch.ones(d)))
            setattr(self, p + "wqkv", P(torch.randn(3 * d, d) * sd))
            setattr(self, p + "wo", P(torch.randn(d, d) * sd))
            setattr(self, p + "ffn_norm", P(torch.ones(d)))
            setattr(self, p + "w_gate_up", P(torch.randn(2 * ff, d) * sd))
            setattr(self, p + "w_down", P(torch.randn(d, ff) * sd))
            self.layer_names.append(p)
        self.final_norm = P(torch.ones(d))
        self.lm_head = P(torch.randn(V, d) * sd)
        self._rope = None
        self._mask = None
        self.capture = None  # list of per-layer last-row entropies when capturing

    def rope(self, T):
        if self._rope is None or self._rope[0].size(0) < T:
            dh = self.m["d_model"] // self.m["heads"]
            half = dh // 2
            inv_freq = torch.pow(self.m["rope_theta"],
                                 -torch.arange(0, half, dtype=torch.double) / half)
            pos = torch.arange(0, T, dtype=torch.double)
            freqs = torch.outer(pos, inv_freq)
            emb = torch.cat([freqs, freqs], -1)
            self._rope = (emb.cos().float(), emb.sin().float())
        return self._rope[0][:T], self._rope[1][:T]

    def mask(self, T):
        if self._mask is None or self._mask.size(0) < T:
            self._mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        return self._mask[:T, :T]

    def rms_norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.m["norm_eps"]) * w

    @staticmethod
    def apply_rope(x, cos, sin):
        half = x.size(-1) // 2
        x1 = x.narrow(-1, 0, half)
        x2 = x.narrow(-1, half, half)
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def attention(self, p, x_norm):
        B, T, _ = x_norm.shape
        H = self.m["heads"]
        dh = self.m["d_model"] // H
        qkv = F.linear(x_norm, getattr(self, p + "wqkv")).view(B, T, 3, H, dh)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        cos, sin = self.rope(T)
        qk = self.apply_rope(qkv.narrow(0, 0, 2), cos, sin)
        q, k, v = qk[0], qk[1], qkv[2]
        if self.capture is not None:
            with torch.no_grad():
                self.capture.append(last_row_entropy(q.narrow(2, T - 1, 1).detach(), k.detach()))
        scores = torch.matmul(q * (1.0 / math.sqrt(dh)), k.transpose(-2, -1))
        scores.masked_fill_(self.mask(T), float("-inf"))
        out = torch.matmul(torch.softmax(scores, -1), v)
        out = out.transpose(1, 2).reshape(B, T, H * dh)
        return F.linear(out, getattr(self, p + "wo"))

    def ffn(self, p, x):
        g, u = F.linear(x, getattr(self, p + "w_gate_up")).chunk(2, -1)
        return F.linear(F.silu(g) * u, getattr(self, p + "w_down"))

    def forward(self, tokens):
        x = F.embedding(tokens, self.embed)
        for p in self.layer_names:
            h = x + self.attention(p, self.rms_norm(x, getattr(self, p + "attn_norm")))
            x = h + self.ffn(p, self.rms_norm(h, getattr(self, p + "ffn_norm")))
        return F.linear(self.rms_norm(x, self.final_norm), self.lm_head)

    def loss(self, window):
        T = window.size(1) - 1
        logits = self.forward(window.narrow(1, 0, T))
        return F.cross_entropy(logits.reshape(-1, self.m["vocab_size"]).float(),
                               window.narrow(1, 1, T).reshape(-1))


def last_row_entropy(q_last, k):
    """libsgt's LastRowEntropy: entropy of the last query row, batch mean, [H]."""
    n = k.size(-2)
    logits = torch.matmul(q_last.float() * (1.0 / math.sqrt(q_last.size(-1))),
                          k.float().transpose(-2, -1))
    logp = torch.log_softmax(logits, -1)
    ent = -(logp.exp() * logp).sum(-1) / math.log(n)
    return ent.mean(0).reshape(-1)


def flops_per_step(m, t):
    """sgt-method.md §6: per token forward per layer 8d^2 + 4Td + 6 d d_ff, LM head 2dV; x3."""
    d, T, ff, V = m["d_model"], m["context"], m["d_ff"], m["vocab_size"]
    fwd = m["layers"] * (8 * d * d + 4 * T * d + 6 * d * ff) + 2 * d * V
    return 3.0 * fwd * t["batch_size"] * T


def param_count_formula(m):
    d, ff, V = m["d_model"], m["d_ff"], m["vocab_size"]
    return 2 * V * d + m["layers"] * (2 * d + 4 * d * d + 3 * d * ff) + d


def learning_rate(t, step):
    """trainer.cc LearningRate: linear warm-up, then cosine to min_lr_ratio * lr."""
    if t["warmup_steps"] > 0 and step <= t["warmup_steps"]:
        return t["lr"] * step / t["warmup_steps"]
    span = max(1, t["steps"] - t["warmup_steps"])
    progress = min(1.0, (step - t["warmup_steps"]) / span)
    return t["lr"] * (t["min_lr_ratio"] + (1 - t["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model, t):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    b1, b2 = t["betas"]
    return torch.optim.AdamW([{"params": decay, "weight_decay": t["weight_decay"]},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=t["lr"], betas=(b1, b2), eps=t["eps"])


def bench(args):
    m, t = load_config(args.config)
    threads = args.threads or t["threads"]
    blas_threads = set_threads(threads)
    torch.manual_seed(t["seed"])
    model = Reference(m)
    opt = make_optimizer(model, t)
    T, micro = m["context"], t["micro_batch_size"]
    n_micro = t["batch_size"] // micro
    gen = torch.Generator().manual_seed(t["seed"])

    def train_step(step):
        lr = learning_rate(t, step)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        loss_sum = torch.zeros(())
        entropies = []
        for _ in range(n_micro):
            window = torch.randint(m["vocab_size"], (micro, T + 1), generator=gen)
            model.capture = [] if args.train_entropy else None
            loss = model.loss(window)
            (loss / n_micro).backward()
            loss_sum += loss.detach().float()
            if model.capture is not None:
                entropies.append(torch.cat(model.capture))
        if t["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        opt.step()
        if entropies:
            (sum(entropies) / len(entropies)).double().tolist()  # the host copy libsgt makes
        return loss_sum.item() / n_micro

    times = []
    loss = float("nan")
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        loss = train_step(step + 1)
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    step_s = sum(times) / args.steps
    fps = flops_per_step(m, t)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == param_count_formula(m), (n_params, param_count_formula(m))
    print(json.dumps({
        "implementation": "pytorch-reference",
        "torch": torch.__version__,
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "openblas_threads": blas_threads,
        "steps": args.steps,
        "train_entropy": args.train_entropy,
        "keep_freed_memory": args.keep_freed_memory,
        "step_ms": step_s * 1e3,
        "step_ms_median": statistics.median(times) * 1e3,
        "step_ms_min": min(times) * 1e3,
        "tokens_per_second": t["batch_size"] * T / step_s,
        "achieved_gflops": fps / step_s / 1e9,
        "flops_per_step": fps,
        "param_count": n_params,
        "last_loss": loss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }))


def read_checkpoint(path):
    """Returns (header dict, TorchScript module) of a libsgt .sgtckpt (see checkpoint.h)."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:8] != b"SGTCKPT1":
        sys.exit("pytorch_reference.py: %s is not a libsgt checkpoint (no SGTCKPT1 magic)" % path)
    n = struct.unpack("<Q", b[8:16])[0]
    header = json.loads(b[16:16 + n])
    at = 16 + n
    size = struct.unpack("<Q", b[at:at + 8])[0]
    payload = b[at + 8:at + 8 + size]
    return header, torch.jit.load(io.BytesIO(payload))


def eval_window_starts(count, num_tokens, window):
    """libsgt/core/sampler.cc EvalWindowStarts."""
    span = num_tokens - window
    return [0 if count == 1 else i * span // max(count - 1, 1) for i in range(count)]


def check(args):
    header, archive = read_checkpoint(args.check_checkpoint)
    cfg = header["config"]
    m, t = config_from_dict(cfg)
    set_threads(t["threads"])
    model = Reference(m)
    libsgt = dict(archive.model.named_parameters())
    ours = dict(model.named_parameters())
    if sorted(libsgt) != sorted(ours):
        sys.exit("pytorch_reference.py: parameter names differ: libsgt %s, reference %s"
                 % (sorted(set(libsgt) - set(ours)), sorted(set(ours) - set(libsgt))))
    with torch.no_grad():
        for name, p in ours.items():
            if p.shape != libsgt[name].shape:
                sys.exit("pytorch_reference.py: %s is %s in libsgt, %s here"
                         % (name, list(libsgt[name].shape), list(p.shape)))
            p.copy_(libsgt[name])
    with open(args.check_summary) as f:
        summary = json.load(f)
    # trainer.cc WriteEval: eval_batches * batch_size windows of context + 1 tokens, in chunks of
    # micro_batch_size, mean over sequences.
    dtype = {"uint16": torch.int16, "uint32": torch.int32}
    with open(args.val + ".json") as f:
        side = json.load(f)
    raw = open(args.val, "rb").read()
    tokens = torch.frombuffer(bytearray(raw), dtype=dtype[side["dtype"]]).long()
    if side["dtype"] == "uint16":
        tokens = tokens & 0xFFFF
    T = m["context"]
    n = t.get("eval_batches", 8) * t["batch_size"]
    starts = eval_window_starts(n, tokens.numel(), T + 1)
    windows = torch.stack([tokens[s:s + T + 1] for s in starts])
    total = 0.0
    with torch.no_grad():
        for b in range(0, n, t["micro_batch_size"]):
            w = windows[b:b + t["micro_batch_size"]]
            total += model.loss(w).item() * w.size(0)
    ref_loss = total / n
    lib_loss = summary["val_loss"]
    n_lib = sum(p.numel() for p in libsgt.values())
    n_ref = sum(p.numel() for p in ours.values())
    ok = n_lib == n_ref == param_count_formula(m) and abs(ref_loss - lib_loss) <= 1e-4 * abs(lib_loss)
    print(json.dumps({"check": "same-model", "ok": ok, "step": header["step"],
                      "param_count_libsgt": n_lib, "param_count_reference": n_ref,
                      "param_count_formula": param_count_formula(m),
                      "val_loss_libsgt": lib_loss, "val_loss_reference": ref_loss,
                      "abs_diff": abs(ref_loss - lib_loss)}))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "configs",
                                                     "vanilla.yaml"))
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=0, help="override train.threads")
    ap.add_argument("--train-entropy", action="store_true",
                    help="also capture last-row entropies as sgt-train does by default")
    ap.add_argument("--keep-freed-memory", action="store_true",
                    help="apply sgt-train's glibc allocator settings (mallopt) before training")
    ap.add_argument("--check-checkpoint", help="libsgt .sgtckpt to compare against")
    ap.add_argument("--check-summary", help="summary.json of the run that wrote it")
    ap.add_argument("--val", help="validation token file of that run")
    args = ap.parse_args()
    if args.check_checkpoint:
        if not (args.check_summary and args.val):
            ap.error("--check-checkpoint needs --check-summary and --val")
        sys.exit(check(args))
    if args.keep_freed_memory:
        keep_freed_memory_mapped()
    bench(args)


if __name__ == "__main__":
    main()
