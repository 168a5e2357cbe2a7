"""Fine-tuning the text encoder (emofuse.training.finetune): config checks, context tokenisation, and a tiny
real run on MELD + GoEmotions that is paused, resumed and compared with an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emofuse.errors import InputError
from emofuse.training.config import dump_config, loads_config

CFG = """
name = "ft"
seed = 0
out = "{out}"
[data]
corpora = ["meld", "goemotions"]
root = "{root}"
limit = 24
[protocol]
name = "holdout"
[protocol.params]
val_group = "dialogue"
val_fraction = 0.2
[finetune]
epochs = 2
batch_size = 8
max_tokens = 24
rank = 2
checkpoint_every = 2
context = 1
threads = 1
per_epoch = {{goemotions = 12}}
"""
REGRESS = "regress = {{emobank = [\"valence\", \"arousal\"]}}\n"


def test_config_round_trips_and_bad_options_are_named() -> None:
    cfg = loads_config(CFG.format(out="/tmp/x", root="/tmp"))
    assert cfg.kind == "finetune" and cfg.finetune.rank == 2 and cfg.finetune.per_epoch == (("goemotions", 12),)
    assert loads_config(dump_config(cfg)) == cfg
    cfg = loads_config((CFG + REGRESS).format(out="/tmp/x", root="/tmp"))
    assert cfg.finetune.regress == (("emobank", ("valence", "arousal")),) and loads_config(dump_config(cfg)) == cfg
    for bad, msg in ((CFG + "loss = 'hinge'\n", "finetune.loss"), (CFG + "alpha = 0\n", "alpha"),
                     (CFG + "lr = 'fast'\n", "finetune.lr"), (CFG + "wings = 2\n", "finetune.wings"),
                     (CFG.replace("{{goemotions = 12}}", "{{isear = 12}}"), "finetune.per_epoch.isear"),
                     (CFG + "[model]\nkind = 'linear'\n", "a [finetune] run has no [model]"),
                     (CFG + "regress = {{emobank = ['joy']}}\n", "finetune.regress.emobank"),
                     (CFG + "regress = {{nocorpus = ['valence']}}\n", "finetune.regress.nocorpus: unknown corpus"),
                     (CFG + "encoder = 'roberta'\n", "finetune.encoder: one of"),
                     (CFG + "precision = 'fp16'\n", "finetune.precision: one of"),
                     (CFG + "distill_weight = 2\n", "distill_weight in")):
        with pytest.raises(InputError, match=msg.replace("[", r"\[")):
            loads_config(bad.format(out="/tmp/x", root="/tmp"))


def test_context_keeps_the_current_utterance_and_cuts_the_oldest_turns() -> None:
    from emofuse.features.text import context_ids, is_ready
    from emofuse.store import resolve

    if not is_ready("minilm-l6"):
        pytest.skip("MiniLM not set up: run `emofuse setup`")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(resolve("minilm-l6") / "tokenizer.json"))
    cur = context_ids(tok, [], "Oh really?", 12)
    assert tok.decode(cur, skip_special_tokens=False) == "[CLS] oh really? [SEP]"
    ids = context_ids(tok, ["one two three four five six seven eight nine ten"], "Oh really?", 12)
    assert len(ids) == 12 and tok.decode(ids, skip_special_tokens=False) == "[CLS] five six seven eight nine ten [SEP] oh really? [SEP]"
    assert context_ids(tok, ["a"], "word " * 40, 12) == context_ids(tok, [], "word " * 40, 12)  # no room: none


@pytest.mark.slow
def test_a_paused_run_resumes_to_the_same_adapters(tmp_path: Path, data_root: Path) -> None:
    from safetensors.numpy import load_file

    from emofuse.features.text import is_ready
    from emofuse.training.run import run

    if not is_ready("minilm-l6"):
        pytest.skip("MiniLM not set up: run `emofuse setup`")
    if not all((data_root / "text" / c).is_dir() for c in ("meld", "goemotions", "emobank")):
        pytest.skip("MELD / GoEmotions / EmoBank not in the shared data")
    whole = loads_config((CFG + REGRESS).format(out=tmp_path / "whole", root=data_root))
    with pytest.raises(InputError, match="NAME.lora.safetensors"):
        run(whole, progress=False, save=tmp_path / "whole.safetensors")  # refused before training
    r = run(whole, progress=False, save=tmp_path / "whole.lora.safetensors")
    assert r["best_epoch"] in (1, 2) and set(r["dev"]["per_corpus"]) == {"meld", "goemotions", "emobank"}
    assert set(r["dev"]["per_corpus"]["emobank"]) == {"valence", "arousal"} and r["calibration"]["temperature"] > 0
    meta = json.loads(__import__("safetensors").safe_open(str(tmp_path / "whole.lora.safetensors"), "np").metadata()["emofuse"])
    assert meta["format"] == "emofuse-lora/1" and meta["rank"] == 2 and meta["context"] == 1
    # the network's own heads, for the extractor with these adapters merged, temperature folded in
    from emofuse.checkpoints import load_head
    from emofuse.extractors import EXTRACTORS

    head = load_head(tmp_path / "whole.safetensors")
    a = load_file(str(tmp_path / "whole.lora.safetensors"))
    assert head.feature.identity == EXTRACTORS["text-minilm-l6-emo"].config_hash(adapter=tmp_path / "whole.lora.safetensors")
    assert head.feature.identity != EXTRACTORS["text-minilm-l6-emo"].config_hash()  # not the installed adapter's
    t = head.meta["training"]["calibration"]["temperature"]
    np.testing.assert_allclose(head.W * t, a["head.weight"].astype(np.float32).T, atol=2e-3)
    np.testing.assert_allclose(head.R, a["va.weight"].astype(np.float32).T, atol=2e-3)
    assert (head.mean == 0).all() and (head.scale == 1).all()
    # distillation: the finished run as a teacher; its logits computed once per student run, deterministically
    student = CFG.replace("epochs = 2", "epochs = 1") + f"teacher = '{tmp_path / 'whole'}'\ndistill_weight = 0.7\n"
    with pytest.raises(InputError, match="finetune.teacher: .* no results.json"):
        run(loads_config((CFG + "teacher = '{out}'\n").format(out=tmp_path / "none", root=data_root)), progress=False)
    s1 = run(loads_config(student.format(out=tmp_path / "student", root=data_root)), progress=False)
    logits = np.load(tmp_path / "student" / "teacher_logits.npy")
    assert logits.shape[1] == 7 and 0 < len(logits) <= s1["n_fit"] and np.isfinite(logits).all() and logits.std() > 0
    run(loads_config(student.format(out=tmp_path / "student2", root=data_root)), progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "student2" / "teacher_logits.npy"), logits)
    mp = loads_config((CFG + "encoder = 'mpnet-base'\n").format(out=tmp_path / "mp", root=data_root))
    with pytest.raises(InputError, match="no extractor for a fine-tuned mpnet-base"):
        run(mp, progress=False, save=tmp_path / "mp.lora.safetensors")  # refused before training
    paused = loads_config((CFG + REGRESS).format(out=tmp_path / "paused", root=data_root))
    p = run(paused, progress=False, stop_after_steps=3)
    assert p["stopped"] and p["step"] == 3
    with pytest.raises(InputError, match="--resume"):
        run(paused, progress=False)  # a checkpoint is never overwritten silently
    run(paused, progress=False, resume=True, save=tmp_path / "paused.lora.safetensors")
    b = load_file(str(tmp_path / "paused.lora.safetensors"))
    assert a.keys() == b.keys() and len(a) == 6 * 6 * 2 + 2 + 2
    for k in a:
        np.testing.assert_allclose(a[k].astype(np.float32), b[k].astype(np.float32), atol=2e-3, err_msg=k)
    assert not np.allclose(a["layers.0.q.B"].astype(np.float32), 0)  # the adapters did train


@pytest.mark.slow
def test_the_merged_graph_computes_what_the_adapted_torch_model_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set-up merges the adapters into MiniLM's weights (W + alpha/r B A) and exports an ordinary graph: its
    embedding equals the LoRA-wrapped torch encoder's, and differs from the plain MiniLM's."""
    import torch
    import onnxruntime as ort

    from emofuse.features import text
    from emofuse.training.config import loads_config
    from emofuse.training.finetune import FinetuneOptions, _lora_module, adapter_tensors, save_adapter

    if not text.is_ready("minilm-l6"):
        pytest.skip("MiniLM not set up: run `emofuse setup`")
    opts = FinetuneOptions(rank=2, alpha=4.0)
    torch.manual_seed(0)
    model = _lora_module(torch, opts, 7).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".B"):
                p.normal_(0, 0.05)
    path = save_adapter(tmp_path / "a.lora.safetensors", adapter_tensors(model), opts,
                        loads_config(CFG.format(out=tmp_path, root=tmp_path)), {})
    with torch.no_grad():  # the torch side with the fp16-rounded values the file holds
        for name, p in model.named_parameters():
            if name.endswith((".A", ".B")):
                p.copy_(p.half().float())
    monkeypatch.setattr(text, "adapter_path", lambda variant: path)
    onnx = text.export_minilm_onnx(tmp_path / "emo.onnx", variant="minilm-l6-emo")
    ids = torch.tensor([[101, 7592, 2088, 999, 102, 0], [101, 2003, 1037, 3231, 2000, 102]])
    mask = (ids != 0).long()
    ref = model.encoder(ids, mask).detach().numpy()
    got = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).run(
        None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    plain = text.get_encoder("minilm-l6").session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert np.abs(ref - got).max() < 1e-4 and np.abs(plain - got).max() > 1e-2
