"""Independent replay of a run's growth decisions (sgt-method.md §4 and §9), from its event log.

Written from the method's text, not from libsgt's code: it rebuilds the entropy signal from the
per-step training entropies (EMA, with last-loop entropies for the kept heads only), then the
candidate pool and each boundary's action under the run's options, and compares both with what
the run recorded. Usage: growth_replay.py EVENTS.jsonl; prints a summary, exits 1 on a mismatch.
"""
import json
import sys


def main(path):
    events = [json.loads(line) for line in open(path)]
    cfg = next(e for e in events if e["event"] == "start")["config"]
    cfg = json.loads(cfg) if isinstance(cfg, str) else cfg
    g, ent = cfg["growth"], cfg["entropy"]
    n_layers, n_heads = cfg["model"]["layers"], cfg["model"]["heads"]
    assert ent["signal"] == "train" and ent["telemetry_interval"] == 1, "needs every step's entropy"
    L, k_max, h = g["layers"], g["k_max"], g["heads"]
    first = 0 if g["include_first_layer"] else 1
    reference_deepen = g["deepen"] == "reference"
    fix_when_stuck = g["no_candidate"] == "fix"
    last_loop = ent["looped_heads"] == "last_loop"

    train = {e["step"]: e for e in events if e["event"] == "entropy" and e["signal"] == "train"}
    decisions = {}
    for e in events:
        if e["event"] == "decision":
            decisions.setdefault(e["step"], []).append(e)

    active = []  # [layer, k, heads] in activation order
    growing, phase = None, "warmup"
    ema = None
    checked = 0
    for step in sorted(train):
        # The signal of this step: loop 0, with the kept heads' last loop under last_loop.
        kept = {a[0]: set(a[2]) for a in active}
        signal = []
        for layer in train[step]["layers"]:
            row = list(layer["passes"][0])
            if last_loop and len(layer["passes"]) > 1 and layer["layer"] in kept:
                for head, value in zip(layer["pass_heads"][-1], layer["passes"][-1]):
                    if head in kept[layer["layer"]]:
                        row[head] = value
            signal.append(row)
        d = ent["ema_decay"]
        ema = signal if ema is None else [[d * a + (1 - d) * b for a, b in zip(ra, rb)]
                                          for ra, rb in zip(ema, signal)]
        if step not in decisions:
            continue
        recorded = decisions[step]
        for r in recorded:
            for row_want, row_got in zip(ema, r["head_entropy"]):
                for a, b in zip(row_want, row_got):
                    assert abs(a - b) <= 1e-9, f"step {step}: signal {b} recorded, {a} replayed"
        mean = [sum(row) / n_heads for row in ema]
        pool = sorted(range(first, n_layers), key=lambda l: (-mean[l], -l))[:L]
        want = []  # (action, layer, k, heads)
        if phase == "fixed":
            want.append(("fixed", -1, 0, []))
        else:
            phase = "growing"
            layers = [a[0] for a in active]
            deepen = None
            for a in active:
                if (reference_deepen or a[0] == growing) and a[0] in pool and a[1] < k_max:
                    deepen = a
                    break
            changed = None
            if deepen is not None:
                deepen[1] += 1
                growing, changed = deepen[0], deepen
                want.append(("deepen", deepen[0], deepen[1], deepen[2]))
            elif len(active) < L:
                bound = min(layers) if layers else n_layers
                options = [c for c in pool if c not in layers and c < bound]
                if options:
                    pick = max(options)
                    row = ema[pick]
                    heads = sorted(sorted(range(n_heads), key=lambda i: (-row[i], i))[:h])
                    active.append([pick, 1, heads])
                    growing, changed = pick, active[-1]
                    want.append(("activate", pick, 1, heads))
            if changed is None:
                if fix_when_stuck:
                    phase = "fixed"
                want.append(("fixed" if fix_when_stuck else "hold", -1, 0, []))
            else:
                done = len(active) == L and (all(a[1] == k_max for a in active)
                                             if reference_deepen else changed[1] == k_max)
                if done:
                    phase = "fixed"
        got = [(r["action"], r["layer"], r["k"], r["heads"]) for r in recorded]
        assert got == want, f"step {step}: recorded {got}, replayed {want} (pool {pool})"
        assert [r["candidates"] for r in recorded] == [pool] * len(recorded), (step, pool)
        checked += 1
    assert checked > 0, "no decision replayed"
    actions = sorted({d["action"] for ds in decisions.values() for d in ds})
    print(f"{checked} boundaries replayed, actions {actions}, final phase {phase}, "
          f"loops {[(a[0], a[1]) for a in active]}")


if __name__ == "__main__":
    main(sys.argv[1])
