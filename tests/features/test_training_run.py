"""The SAE training run kind: it trains, stops keeping its work, resumes exactly, and refuses a foreign checkpoint."""

from __future__ import annotations

import pytest
import torch

from features.runs import SAETraining
from interp.errors import InputError
from interp.runs.registry import run_kinds

SMALL = dict(hook_name="blocks.1.hook_resid_pre", d_sae=64, k=4, corpus="pydoc-topics", n_tokens=6_000,
             context_tokens=32, batch_contexts=8, learning_rate=3e-3, dead_after_tokens=2_000, evaluation_contexts=8)  # fmt: skip


class StopAfter(Exception):
    pass


def test_training_lowers_fvu_and_reports_quality_and_a_card(tiny_llama):
    trained = SAETraining(**SMALL).run(tiny_llama)
    assert trained.tokens == 6_000 and trained.curve[-1].tokens == 6_000
    assert trained.curve[-1].fvu < trained.curve[0].fvu
    assert trained.quality.n_tokens == 8 * 31  # the held-out contexts, the sink left out
    assert trained.quality.l0 == pytest.approx(4.0, abs=0.1)
    card = trained.card()
    assert card["hook_name"] == "blocks.1.hook_resid_pre" and card["training_tokens"] == 6_000
    assert card["data"]["licence"] == "PSF License 2.0"
    assert card["metrics"]["ce_loss_recovered"] == pytest.approx(trained.quality.ce_loss_recovered)
    assert run_kinds()["sae_training"] is SAETraining


def test_a_stopped_training_resumes_exactly_from_its_checkpoint(tiny_llama, tmp_path):
    straight = SAETraining(**SMALL).run(tiny_llama)
    spec = SAETraining(**SMALL, checkpoint=str(tmp_path / "ckpt"))
    messages = []

    def stop_at_half(fraction, message):
        messages.append(message)
        if "Training: 3," in message:
            raise StopAfter

    with pytest.raises(StopAfter):
        spec.run(tiny_llama, stop_at_half)
    assert (tmp_path / "ckpt" / "training_state.safetensors").is_file()
    resumed = spec.run(tiny_llama)
    assert resumed.tokens == 6_000
    assert [p.tokens for p in resumed.curve] == [p.tokens for p in straight.curve]
    for name in ("encoder_weight", "decoder_weight", "encoder_bias", "decoder_bias"):
        assert torch.equal(getattr(resumed.sae, name), getattr(straight.sae, name)), name
    with pytest.raises(InputError, match="other settings"):
        SAETraining(**{**SMALL, "k": 8}, checkpoint=str(tmp_path / "ckpt")).run(tiny_llama)


@pytest.mark.parametrize(
    "change, words",
    [({"hook_name": "blocks.1.attn.hook_z"}, "not one Steerscope reads"), ({"corpus": "wikipedia"}, "training text"),
     ({"k": 65}, "k"), ({"n_tokens": 0}, "training tokens"),
     ({"context_tokens": 4096, "evaluation_contexts": 10_000}, "hold out fewer")],
)  # fmt: skip
def test_bad_training_settings_say_what_to_fix(tiny_llama, change, words):
    with pytest.raises(InputError, match=words):
        SAETraining(**{**SMALL, **change}).run(tiny_llama)
