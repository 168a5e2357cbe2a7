"""Fusion on the constructed multimodal set (issue 16): per-expert and fused accuracy / UA, the conflict and
missing sets, ECE, and the cost of a fusion call. Prints markdown tables.

    python benchmarks/fusion_constructed.py [--data ../shared/data] [--per-class 30] [--save] [--voice-protocol speaker-out]

The set (``emofuse.training.constructed``) pairs speech clips of the four speech corpora with FER2013 faces of
the same label: voice, face and words of different people, labelled as constructed. The voice expert of every
clip never heard its corpus. The rule's parameters are fitted on the *fit* part (other speakers, FER2013 faces
of the face network's selection carve); every figure is on the *validation* part (other speakers, PublicTest
faces). ``--voice-protocol speaker-out`` trains the voice expert on the other part's speakers of every corpus,
the clip's own included (a diagnostic: what fusion does with a voice expert as strong as it is in-corpus). ``--save`` writes the fitted parameters to ``src/emofuse/weights/fusion-poe.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--floor", type=float, default=0.2)
    ap.add_argument("--voice-seconds", type=float, default=1.0)
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--voice-protocol", default="corpus-out", choices=("corpus-out", "speaker-out"),
                    help="speaker-out: a voice expert that heard the clip's corpus (not its speakers); a diagnostic, "
                         "never saved")
    ap.add_argument("--networks", default="late,concat,pairwise,gated",
                    help="registered fusion networks to train on the fit part ('' for none)")
    ap.add_argument("--raw-networks", default="",
                    help="networks to train on the analysis's raw features, leave one corpus out (e.g. concat,gated)")
    a = ap.parse_args()
    if a.save and a.voice_protocol != "corpus-out":
        ap.error("--save fits the shipped rule, whose voice expert never heard the corpus: leave --voice-protocol out")

    from sklearn.metrics import balanced_accuracy_score

    from emofuse.segment_fusion import POE_FILE, confidence_rule, poe_rule
    from emofuse.taxonomy import EMOTIONS
    from emofuse.training.constructed import MODALITIES, ConstructedOptions, build, fit_poe, outputs_of
    from emofuse.training.metrics import expected_calibration_error

    t0 = time.perf_counter()
    t = build(ConstructedOptions(data=a.data, seed=a.seed, per_class=a.per_class, cache=str(ROOT / "runs" / "constructed"),
                                voice_protocol=a.voice_protocol))
    print(f"constructed set: {len(t.label)} items in {time.perf_counter() - t0:.0f} s (cached under runs/constructed)")
    fit, val = np.flatnonzero(t.part == "fit"), np.flatnonzero(t.part == "val")
    for name, rows in (("fit", fit), ("validation", val)):
        pres = {m: int(t.present(m)[rows].sum()) for m in MODALITIES}
        by = {c: int((t.corpus[rows] == c).sum()) for c in sorted(set(t.corpus))}
        print(f"  {name}: {len(rows)} items {by}; present {pres}; speakers {len(set(t.speaker[rows]))}")

    params = {rel: fit_poe(t, fit, a.floor, a.voice_seconds, reliability=rel) for rel in (False, True)}
    params["back"] = fit_poe(t, fit, a.floor, a.voice_seconds, reliability=True, prior_back=True)
    for rel, p in params.items():
        print(f"poe fitted (reliability {'off' if rel is False else 'on'}, prior put back {p['prior_back']}): "
              f"tempers {p['temper']}, fit NLL {p['fit']['nll']}")
    # the variant shipped is chosen on the fit part (its NLL), never on the validation part
    ship = "back" if params["back"]["fit"]["nll"] < params[True]["fit"]["nll"] else True
    FULL = "poe, full + prior put back" if ship == "back" else "poe, priors + tempers + reliability"
    print(f"chosen on the fit part (lower NLL): {FULL}")
    print("expert priors (class-balanced mean answer on the fit part):")
    for k, v in params[True]["priors"].items():
        print(f"  {k}: " + " ".join(f"{e[:3]} {x:.2f}" for e, x in zip(EMOTIONS, v)))

    rules = {
        "confidence (the current default)": confidence_rule(),
        "poe, plain product": poe_rule(params[False], use_priors=False, use_temper=False, use_reliability=False),
        "poe, priors divided out": poe_rule(params[False], use_temper=False, use_reliability=False),
        "poe, priors + tempers": poe_rule(params[False], use_reliability=False),
        "poe, priors + tempers + reliability": poe_rule(params[True]),
        "poe, full + prior put back": poe_rule(params["back"]),
    }

    # a trained fusion for comparison: multinomial logistic regression over the three experts' log-probabilities
    # (absent = 0, plus presence flags), C by 5-fold CV on the fit part
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    def stack_x(rows: np.ndarray, mods=MODALITIES) -> np.ndarray:  # type: ignore[no-untyped-def]
        x, ok = t.log_probs(rows, mods)
        return np.hstack([c for m in MODALITIES for c in (x[m], ok[m][:, None])])

    Cs = (0.01, 0.1, 1.0, 10.0)
    cv = {C: cross_val_score(LogisticRegression(C=C, max_iter=3000), stack_x(fit), t.label[fit], cv=5,
                             scoring="balanced_accuracy").mean() for C in Cs}
    C_best = max(cv, key=lambda c: cv[c])
    stacker = LogisticRegression(C=C_best, max_iter=3000).fit(stack_x(fit), t.label[fit])
    print(f"stacked logistic regression: C {C_best} (CV UA on the fit part {cv[C_best]:.3f})")

    def stacked(rows: np.ndarray, mods=MODALITIES) -> np.ndarray:  # type: ignore[no-untyped-def]
        out = np.zeros((len(rows), len(EMOTIONS)))
        out[:, stacker.classes_] = stacker.predict_proba(stack_x(rows, mods))
        return out

    def score(P: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
        # an absent expert (NaN row) answers uniformly: its argmax is the first class, and ECE stays defined
        P = np.where(np.isnan(P).any(axis=1, keepdims=True), 1.0 / P.shape[1], P)
        pred = P.argmax(1)
        return float(np.mean(pred == y)), float(balanced_accuracy_score(y, pred)), float(expected_calibration_error(P, y))

    def fused(rule, rows: np.ndarray, mods=MODALITIES, tab=t) -> np.ndarray:  # type: ignore[no-untyped-def]
        out = np.full((len(rows), len(EMOTIONS)), 1.0 / len(EMOTIONS))
        for j, i in enumerate(rows):
            f = rule(outputs_of(tab, int(i), mods))
            if f is not None:
                out[j] = [f.probs[e] for e in EMOTIONS]
        return out

    def table(title: str, rows: np.ndarray) -> dict[str, float]:
        y = t.label[rows]
        print(f"\n### {title}: {len(rows)} items, {len(set(y))} classes\n")
        print("| answer | accuracy | UA | ECE |\n|---|---|---|---|")
        res = {}
        for m in MODALITIES:
            acc, ua, ece = score(t.P[m][rows], y)
            res[m] = ua
            print(f"| {m} expert alone | {acc:.3f} | {ua:.3f} | {ece:.3f} |")
        for name, rule in rules.items():
            acc, ua, ece = score(fused(rule, rows), y)
            res[name] = ua
            print(f"| fused: {name} | {acc:.3f} | {ua:.3f} | {ece:.3f} |")
        acc, ua, ece = score(stacked(rows), y)
        print(f"| trained: stacked logistic regression (fit part) | {acc:.3f} | {ua:.3f} | {ece:.3f} |")
        best = max(MODALITIES, key=lambda m: res[m])
        full = res[FULL]
        print(f"\nbest single expert {best} UA {res[best]:.3f}; {FULL} {full:.3f}: {100 * (full - res[best]):+.1f} points "
              f"(target +8), against the confidence rule {100 * (full - res['confidence (the current default)']):+.1f} (target +5)")
        return res

    all3 = val[np.all([t.present(m)[val] for m in MODALITIES], axis=0)]
    table("Validation part, all three modalities present", all3)
    for c in sorted(set(t.corpus[all3])):
        r = all3[t.corpus[all3] == c]
        y = t.label[r]
        line = " / ".join(f"{m} {score(t.P[m][r], y)[1]:.3f}" for m in MODALITIES)
        print(f"  {c} ({len(r)}): UA {line} / poe {score(fused(rules[FULL], r), y)[1]:.3f} "
              f"/ confidence {score(fused(rules['confidence (the current default)'], r), y)[1]:.3f}")

    # missing: the same rows with modalities taken away
    print("\n### Missing modalities (validation rows with all three, some taken away): UA\n")
    print("| present | best remaining expert | confidence | poe (shipped variant) | stacked LR |\n|---|---|---|---|---|")
    y = t.label[all3]
    for mods in (("voice", "face"), ("face", "text"), ("voice", "text"), ("face",), ("voice",), ("text",)):
        best = max(score(t.P[m][all3], y)[1] for m in mods)
        c = score(fused(rules["confidence (the current default)"], all3, mods), y)[1]
        p = score(fused(rules[FULL], all3, mods), y)[1]
        st = score(stacked(all3, mods), y)[1]
        print(f"| {' + '.join(mods)} | {best:.3f} | {c:.3f} | {p:.3f} | {st:.3f} |")

    # conflict: each row's voice and words with the face of another row of a different label
    rng = np.random.default_rng(a.seed)
    donors = np.array([rng.choice(all3[t.label[all3] != t.label[i]]) for i in all3])
    print("\n### Conflict (voice + words of one emotion, a face of another): which side the fused label takes\n")
    print("| rule | = the face's label | = the voice's label | neither | mean fused confidence (conflict / agreeing) |\n|---|---|---|---|---|")
    for name in ("confidence (the current default)", FULL):
        rule = rules[name]
        lab_f, lab_v, conf, conf_ok = [], [], [], []
        for i, d in zip(all3, donors):
            o = outputs_of(t, int(i))
            o["face"] = outputs_of(t, int(d), ("face",))["face"]
            f = rule(o)
            k = EMOTIONS.index(f.label)
            lab_f.append(k == t.label[d])
            lab_v.append(k == t.label[i])
            conf.append(f.confidence)
            conf_ok.append(rule(outputs_of(t, int(i))).confidence)
        nf, nv = np.mean(lab_f), np.mean(lab_v)
        print(f"| {name} | {nf:.3f} | {nv:.3f} | {1 - nf - nv:.3f} | {np.mean(conf):.3f} / {np.mean(conf_ok):.3f} |")

    table("Validation part, every row (absent modalities left out)", val)

    # without calibration: each expert's temperature undone, the rule refitted on the uncalibrated fit part
    from emofuse.training.constructed import uncalibrated

    u = uncalibrated(t)
    pu = fit_poe(u, fit, a.floor, a.voice_seconds, reliability=True)
    print(f"\n### Without calibration (each expert's temperature undone; poe refitted on it: tempers {pu['temper']}), "
          f"validation rows with all three\n")
    print("| answer | calibrated: UA | ECE | uncalibrated: UA | ECE |\n|---|---|---|---|---|")
    y = t.label[all3]
    for m in MODALITIES:
        c, n = score(t.P[m][all3], y), score(u.P[m][all3], y)
        print(f"| {m} expert alone | {c[1]:.3f} | {c[2]:.3f} | {n[1]:.3f} | {n[2]:.3f} |")
    for name, rc, ru in (("confidence", rules["confidence (the current default)"], confidence_rule()),
                         ("poe (shipped variant)", rules[FULL], poe_rule(pu))):
        c, n = score(fused(rc, all3), y), score(fused(ru, all3, tab=u), y)
        print(f"| fused: {name} | {c[1]:.3f} | {c[2]:.3f} | {n[1]:.3f} | {n[2]:.3f} |")

    if a.networks:
        networks(t, fit, all3, score, a.seed, a.networks)
    if a.raw_networks:
        raw_networks(t, fit, all3, score, a.seed, a.raw_networks)

    # cost of one fusion call (a ratio within this run is what is stable here)
    outs = [outputs_of(t, int(i)) for i in all3]
    cost = {}
    for name in ("confidence (the current default)", FULL):
        rule = rules[name]
        s = time.perf_counter()
        for _ in range(5):
            for o in outs:
                rule(o)
        cost[name] = (time.perf_counter() - s) / (5 * len(outs))
    print(f"\nfusion cost per segment: poe {1e6 * cost[FULL]:.0f} us, confidence "
          f"{1e6 * cost['confidence (the current default)']:.0f} us (ratio "
          f"{cost[FULL] / cost['confidence (the current default)']:.2f}; target <= 1 ms)")

    if a.save:
        from emofuse.segment_fusion import expert_hashes

        doc = dict(params[ship], experts=expert_hashes(), provenance=(
            "fitted by benchmarks/fusion_constructed.py on the fit part of the constructed set "
            f"(emofuse.training.constructed, seed {a.seed}, {a.per_class} clips per class, corpus and part)"))
        POE_FILE.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {POE_FILE}")
    return 0


def networks(t, fit: np.ndarray, rows: np.ndarray, score, seed: int, names: str = "late,concat,pairwise,gated") -> None:  # type: ignore[no-untyped-def]
    """The registered fusion networks trained on what the analysis hands a fusion rule (each expert's
    log-probabilities, absent = masked), over the fit part: epochs chosen on a fifth of its speakers, modality
    dropout 0.3 so that a missing modality is seen in training; scored once on the validation rows."""
    from emofuse.networks import FusionConfig
    from emofuse.taxonomy import EMOTIONS
    from emofuse.training.constructed import MODALITIES
    from emofuse.training.networks import Part, TrainOptions, fit as fit_net, predict

    def part(r: np.ndarray, mods=MODALITIES) -> Part:  # type: ignore[no-untyped-def]
        x, k = t.log_probs(r, mods)
        return Part({m: v.astype(np.float32) for m, v in x.items()}, t.label[r].astype(np.int64), None, k)

    rng = np.random.default_rng([seed, 5])
    spk = sorted(set(t.speaker[fit]))
    sel = set(rng.choice(spk, size=max(1, len(spk) // 5), replace=False).tolist())
    inner, held = fit[~np.isin(t.speaker[fit], list(sel))], fit[np.isin(t.speaker[fit], list(sel))]
    cfg = FusionConfig(dims={m: len(EMOTIONS) for m in MODALITIES}, hidden=32, regression=False, dropout=0.2,
                       modality_dropout=0.3)
    opts = TrainOptions(epochs=200, batch_size=32, lr=3e-3, patience=30, seed=seed, threads=2)
    y = t.label[rows]
    print(f"\n### Trained fusion networks on the experts' log-probabilities (fit part: {len(inner)} to train, "
          f"{len(held)} of {len(sel)} held-out speakers to choose the epoch; validation rows with all three)\n")
    print("| network | params | epoch | UA all three | ECE | voice + face | face + text | face | voice |\n|---|---|---|---|---|---|---|---|---|")
    for name in [n for n in names.split(",") if n]:
        r = fit_net(name, cfg, part(inner), part(held), list(EMOTIONS), opts)

        def ua(mods) -> tuple[float, float]:  # type: ignore[no-untyped-def]
            z = predict(r.model, part(rows, mods))["logits"]
            q = np.exp(z - z.max(1, keepdims=True))
            q /= q.sum(1, keepdims=True)
            _, u, e = score(q, y)
            return u, e

        full, ece = ua(MODALITIES)
        miss = [ua(m)[0] for m in (("voice", "face"), ("face", "text"), ("face",), ("voice",))]
        print(f"| {name} | {r.n_params:,} | {r.best_epoch} | {full:.3f} | {ece:.3f} | " + " | ".join(f"{x:.3f}" for x in miss) + " |")


def raw_networks(t, fit: np.ndarray, rows: np.ndarray, score, seed: int, names: str) -> None:  # type: ignore[no-untyped-def]
    """Registered networks on what ``analyze`` computes before the experts: the utterance's Whisper vector,
    the transcript's embedding (MiniLM-emo for English, e5 otherwise: two inputs, each masked where the other
    applies) and the face expert's log-probabilities. The voice vector would let a network learn a corpus's
    voices, so each validation corpus is scored by networks trained on the *other* corpora's fit part (leave one
    corpus out, as the poe rule's voice expert): 4 networks per name. Epochs chosen on a fifth of the training
    speakers; inputs standardised with the training rows' statistics; modality dropout 0.3."""
    from emofuse.networks import FusionConfig
    from emofuse.taxonomy import EMOTIONS
    from emofuse.training.networks import Part, TrainOptions, fit as fit_net, predict

    if "voice" not in t.X or "text" not in t.X:
        print("\n(raw networks: this cached table has no raw features; delete runs/constructed/table-*.npz)")
        return
    en = t.text_src == "text-minilm-l6-emo"
    raw = {"voice": t.X["voice"], "text_en": np.where(en[:, None], t.X["text"], np.nan),
           "text_xx": np.where((~en & (t.text_src != ""))[:, None], t.X["text"], np.nan),
           "face": np.log(np.clip(t.P["face"], 1e-6, 1.0))}

    def part(r: np.ndarray, stats: dict, keep=("voice", "face", "text_en", "text_xx")) -> Part:  # type: ignore[no-untyped-def]
        x, k = {}, {}
        for m, v in raw.items():
            ok = ~np.isnan(v[r]).any(axis=1) & (m in keep)
            mu, sd = stats[m]
            x[m] = np.where(ok[:, None], (np.nan_to_num(v[r]) - mu) / sd, 0.0).astype(np.float32)
            k[m] = ok
        return Part(x, t.label[r].astype(np.int64), None, k)

    cfg = FusionConfig(dims={m: v.shape[1] for m, v in raw.items()}, hidden=64, regression=False, dropout=0.3,
                       modality_dropout=0.3)
    opts = TrainOptions(epochs=200, batch_size=32, lr=1e-3, patience=30, seed=seed, threads=2)
    print("\n### Trained fusion networks on the analysis's raw features, leave one corpus out (validation rows "
          "with all three)\n")
    print("| network | UA all three | ECE | voice + face | face + text | face | voice |\n|---|---|---|---|---|---|---|")
    corpora = sorted(set(t.corpus[rows]))
    for name in [n for n in names.split(",") if n]:
        Q: dict[tuple[str, ...], np.ndarray] = {}
        for c in corpora:
            tr = fit[t.corpus[fit] != c]
            stats = {}
            for m, v in raw.items():
                good = v[tr][~np.isnan(v[tr]).any(axis=1)]
                stats[m] = (good.mean(0), good.std(0) + 1e-6) if len(good) else (0.0, 1.0)
            rng = np.random.default_rng([seed, 6, len(c)])
            spk = sorted(set(t.speaker[tr]))
            sel = set(rng.choice(spk, size=max(1, len(spk) // 5), replace=False).tolist())
            inner, held = tr[~np.isin(t.speaker[tr], list(sel))], tr[np.isin(t.speaker[tr], list(sel))]
            r = fit_net(name, cfg, part(inner, stats), part(held, stats), list(EMOTIONS), opts)
            mine = rows[t.corpus[rows] == c]
            for mods in (("voice", "face", "text_en", "text_xx"), ("voice", "face"), ("face", "text_en", "text_xx"),
                         ("face",), ("voice",)):
                z = predict(r.model, part(mine, stats, mods))["logits"]
                q = np.exp(z - z.max(1, keepdims=True))
                Q.setdefault(mods, np.zeros((len(t.label), len(EMOTIONS))))[mine] = q / q.sum(1, keepdims=True)
        y = t.label[rows]
        res = [score(Q[m][rows], y) for m in Q]
        print(f"| {name} | {res[0][1]:.3f} | {res[0][2]:.3f} | " + " | ".join(f"{x[1]:.3f}" for x in res[1:]) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
