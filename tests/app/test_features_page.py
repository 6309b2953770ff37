"""The Features page on the default model and the shipped SAE: what it shows equals the library's results, labels
are kept, a bad folder is a message, and steering runs and shows its scores."""

from __future__ import annotations

import pytest

from features.dashboard import feature_dashboard, load_index, prompt_features
from features.shipped import SHIPPED
from tests.app.test_pages import open_page

pytestmark = pytest.mark.real_model


@pytest.fixture()
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def test_the_page_shows_the_prompts_features_and_the_sae_quality(default_model, data):
    from features.shipped import shipped_sae

    app = open_page("pages/features.py")
    assert not app.error, [e.value for e in app.error]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["CE loss recovered"].endswith("%") and float(metrics["CE loss recovered"].split()[0]) >= 75
    app.text_area(key="feat_prompt").input("The capital of France is Paris").run()
    table = app.dataframe[0].value
    sae = shipped_sae(default_model).sae
    expected = prompt_features(default_model, sae, "The capital of France is Paris")
    last = table[table["position"] == len(expected.tokens) - 1]
    assert list(last["feature"]) == [latent for latent, _ in expected.top[-1][:3]]
    assert set(last["token"]) == {expected.tokens[-1]}


def test_a_feature_dashboard_matches_the_library_and_its_label_is_kept(default_model, data):
    from features.shipped import shipped_sae

    sae = shipped_sae(default_model).sae
    app = open_page("pages/features.py")
    app.number_input(key="feat_latent").set_value(123).run()
    assert not app.error, [e.value for e in app.error]
    board = feature_dashboard(default_model, sae, load_index(SHIPPED, sae), 123)
    effects = next(frame.value for frame in app.dataframe if "promotes" in frame.value.columns)
    assert list(effects["promotes"]) == [e.token for e in board.promoted]
    label = app.text_input(key="feat_label_123")
    assert label.value == board.label
    label.input("unicode escapes").run()
    again = open_page("pages/features.py")
    again.number_input(key="feat_latent").set_value(123).run()
    assert again.text_input(key="feat_label_123").value == "unicode escapes"
    assert (data / "features" / "labels.json").is_file()


def test_attribution_and_steering_show_their_numbers(default_model, data):
    app = open_page("pages/features.py")
    attribution = next(frame.value for frame in app.dataframe if "attribution (nats)" in frame.value.columns)
    assert len(attribution) == 10 and attribution["ablated drop (nats)"].notna().sum() == 5
    app.number_input(key="feat_latent").set_value(123).run()
    app.radio(key="feat_steer_mode").set_value("clamp").run()
    app.number_input(key="feat_steer_value").set_value(20.0).run()
    app.button(key="feat_steer_run").click().run()
    assert not app.error, [e.value for e in app.error]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Feature"] == "123 (clamp 20)" and metrics["Perplexity (× unsteered)"].startswith("×")
    steered = next(frame.value for frame in app.dataframe if "steered" in frame.value.columns)
    assert (steered["steered"] != steered["unsteered"]).any()  # clamping a feature changes what it writes


def test_a_bad_sae_folder_is_a_message_not_a_traceback(tmp_path, data):
    (tmp_path / "sae").mkdir()
    (tmp_path / "sae" / "sae.pt").write_bytes(b"\x80\x04")
    app = open_page("pages/features.py", feat_source="An SAE folder on this machine", feat_folder=str(tmp_path / "sae"))
    assert any("never opens" in e.value for e in app.error)
    assert not app.exception


def test_training_an_sae_on_the_page_saves_one_the_loader_reads(tiny_llama_dir, data):
    from features.files import load_sae
    from ui.model import OTHER_CHOICE

    tiny = {"model_choice": OTHER_CHOICE, "model_custom_spec": str(tiny_llama_dir)}
    app = open_page("pages/features.py", **tiny)
    assert any("trained for another model" in e.value for e in app.error)  # the shipped SAE is SmolLM2's
    app.number_input(key="feat_train_layer").set_value(1)
    app.number_input(key="feat_train_width").set_value(64)
    app.number_input(key="feat_train_k").set_value(4)
    app.number_input(key="feat_train_tokens").set_value(3000)
    app.selectbox(key="feat_train_corpus").set_value("pydoc-topics")
    app.button(key="feat_train").click().run()
    assert not app.exception
    done = [s.value for s in app.success]
    assert done and "CE loss recovered" in done[0]
    folders = list((data / "features" / "training").glob("*/sae"))
    assert len(folders) == 1
    loaded = load_sae(folders[0])
    assert loaded.layout == "steerscope" and loaded.sae.d_sae == 64 and loaded.card["training_tokens"] == 3000
    assert (folders[0].parent / "training_state.safetensors").is_file()  # the checkpoint a Stop would resume


def test_a_cardless_sae_is_measured_and_compared_with_a_mean_difference(tiny_llama, tiny_llama_dir, data):
    from features.runs import SAEQualityRun
    from tests.runs.examples_features import tiny_sae_folder
    from ui.model import OTHER_CHOICE

    folder = tiny_sae_folder(tiny_llama)
    app = open_page("pages/features.py", model_choice=OTHER_CHOICE, model_custom_spec=str(tiny_llama_dir),
                    feat_source="An SAE folder on this machine", feat_folder=folder)  # fmt: skip
    assert any("no card with quality figures" in w.value for w in app.warning)
    app.button(key="feat_measure").click().run()
    spec = SAEQualityRun(sae_folder=folder)
    expected = spec.run(tiny_llama)
    shown = [s.value for s in app.success]
    assert any(
        f"FVU {expected.fvu:.3f}" in v and f"CE loss recovered {100 * expected.ce_loss_recovered:.1f}%" in v for v in shown
    )
    app.number_input(key="feat_latent").set_value(1).run()
    app.button(key="feat_compare").click().run()
    assert not app.exception, app.exception
    assert any("Cosine" in m.value for m in app.markdown)
    table = next(frame.value for frame in app.dataframe if "added norm" in frame.value.columns)
    assert set(table["direction"]) == {"feature 1", "mean difference (sentiment)"} and len(table) == 6
