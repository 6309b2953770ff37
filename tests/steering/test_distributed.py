"""Steering evaluations and sweeps on Ray workers equal the in-process run (a local Ray started by the test)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp import InputError
from interp.distributed import ModelSource, RayWorkers
from steering.__main__ import main
from steering.distributed import evaluation_on_ray
from steering.runs import PROMPTS_PER_STEP, SteeringBatchEvaluation
from tests.steering.test_vector import make

PROMPTS = ("I love", "The store", "Today we", "My friend", "A big", "The city", "Our team", "She said", "He went", "They made")


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _same_scores(ours, theirs) -> None:
    assert ours.texts == theirs.texts
    for field in ("behaviour", "perplexity", "distinct2", "token_counts"):
        np.testing.assert_allclose(getattr(ours, field), getattr(theirs, field), rtol=1e-6, atol=1e-6)


def test_a_batch_evaluation_on_ray_equals_the_in_process_run(local_ray, tiny_llama, tiny_llama_dir):
    assert len(PROMPTS) > PROMPTS_PER_STEP  # two steps, so two workers each sample one, with their own seeds
    spec = SteeringBatchEvaluation(make(tiny_llama, layers=(1,)), 1, 3.0, PROMPTS, max_new_tokens=4, seed=7)
    messages = []
    on_ray = evaluation_on_ray(
        spec, ModelSource.of(tiny_llama_dir, tiny_llama, device="cpu"), workers=2, on_message=messages.append
    )
    direct = spec.run(tiny_llama)
    assert messages == [f"[ray] 2 worker(s) × 1 thread(s) loading {tiny_llama_dir.resolve()}"]
    assert (on_ray.layer, on_ray.coefficient, on_ray.prompts, on_ray.scorer) == (1, 3.0, PROMPTS, direct.scorer)
    _same_scores(on_ray.unsteered, direct.unsteered)
    _same_scores(on_ray.steered, direct.steered)
    assert on_ray.steered.texts != on_ray.unsteered.texts  # the workers did steer
    assert on_ray.behaviour_gain == pytest.approx(direct.behaviour_gain, abs=1e-9)


def test_the_sweep_command_on_ray_writes_the_in_process_table(local_ray, tiny_llama, tiny_llama_dir, tmp_path, capsys):
    vector = make(tiny_llama, layers=(0, 1)).save(tmp_path / "v.safetensors")
    (tmp_path / "prompts.txt").write_text("I love\nThe store\nToday we\n")
    common = ["sweep", "--vector", str(vector), "--layers", "0,1", "--coefficients", "2,6", "--goal", "both",
              "--prompts", str(tmp_path / "prompts.txt"), "--n-samples", "2", "--max-new-tokens", "4",
              "--model", str(tiny_llama_dir)]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "direct.csv")]) == 0
    direct_err = capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "ray.csv"), "--ray", "auto"]) == 0  # joins the Ray already running
    ray_err = capsys.readouterr().err
    assert "[ray] 2 worker(s)" in ray_err and "8 of 8 cells" in ray_err
    direct, on_ray = pd.read_csv(tmp_path / "direct.csv"), pd.read_csv(tmp_path / "ray.csv")
    assert len(direct) == 8  # 2 layers x 4 coefficients (2 and 6 both ways), in the same order below
    pd.testing.assert_frame_equal(on_ray, direct, rtol=1e-6, atol=1e-6)
    assert ray_err.splitlines()[-2] == direct_err.splitlines()[-2]  # the same recommendation


def test_a_worker_with_other_weights_fails_with_a_message(local_ray, tiny_llama_dir):
    wrong = ModelSource(str(tiny_llama_dir), "cpu", weights_sha256="0" * 64)
    with pytest.raises(InputError, match="A Ray worker loaded different weights"):
        with RayWorkers(wrong, workers=1):
            pass
