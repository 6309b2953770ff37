"""The Steering page's modes in a real browser on the default model: what a user sees in each (numbers with their
units, which prompts were steered, the downloaded checkpoint). STEERSCOPE_SCREENSHOTS=docs/img writes
docs/img/steering_<mode>.png."""

from __future__ import annotations

import re
import zipfile

SLOW_CPU_S = 300  # a mode's first run on a shared 2-core CPU has taken over 120 s


def choose_mode(page, name: str, label: str):
    """Open the Steering page in mode ``name`` by its link (the Add mode's samples are not computed first)."""
    tab = page.tab
    tab.goto(f"{page.base_url}/steering?mode={name}", wait_until="domcontentloaded")
    page.wait_idle(SLOW_CPU_S)
    chosen = tab.locator('[data-testid="stButtonGroup"] [role="radio"][aria-checked="true"]')
    chosen.first.wait_for(timeout=SLOW_CPU_S * 1000)  # the script may not have started when the last page went idle
    assert chosen.all_inner_texts() == [label]  # the link's mode is the one selected on screen
    page.wait_idle(SLOW_CPU_S)
    return tab


def metric(tab, label: str) -> str:
    box = tab.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_only_when_it_applies_shows_the_threshold_and_which_prompts_were_steered(page, tmp_path):
    tab = choose_mode(page, "conditional", "Only when it applies")
    tab.get_by_text("Threshold (cosine)").wait_for()
    assert re.fullmatch(r"[+-]\d\.\d{3}", metric(tab, "Threshold (cosine)"))
    accuracy = metric(tab, "Accuracy on the 20 labelled prompts")
    assert re.fullmatch(r"\d{1,3}%", accuracy) and int(accuracy[:-1]) >= 75, accuracy  # food vs other topics separate
    verdicts = tab.get_by_text(re.compile(r"^fires: (yes|no)$")).all_inner_texts()
    assert len(verdicts) == 4, verdicts
    steered = metric(tab, "Test prompts steered")
    assert steered == f"{verdicts.count('fires: yes')} of 4"
    assert page.screenshot("steering_conditional", tmp_path).stat().st_size > 10_000


def test_remove_a_direction_shows_the_damage_and_downloads_the_checkpoint(page, tmp_path):
    tab = choose_mode(page, "ablation", "Remove a direction")
    tab.get_by_text("Direction removed (layer").wait_for()
    assert re.fullmatch(r"\d+\.\d{3} nats", metric(tab, "KL(unablated ‖ ablated)"))
    tab.get_by_role("button", name="Build the checkpoint").click()
    button = tab.get_by_role("button", name=re.compile(r"^Download the orthogonalised checkpoint \(\.zip, \d+ MB\)$"))
    button.wait_for(timeout=300_000)
    page.wait_idle()
    tab.get_by_text("are equal up to float32 rounding, within 0.001").wait_for()
    assert page.screenshot("steering_ablation", tmp_path).stat().st_size > 10_000
    with tab.expect_download(timeout=300_000) as download:
        button.click()
    path = tmp_path / "orthogonalised.zip"
    download.value.save_as(path)
    names = set(zipfile.ZipFile(path).namelist())
    assert {"orthogonalised/config.json", "orthogonalised/model.safetensors"} <= names, names


def test_rotate_shows_the_norm_kept_and_the_kl(page, tmp_path):
    tab = choose_mode(page, "rotate", "Rotate")
    tab.get_by_text("0° changes nothing", exact=False).wait_for()
    tab.get_by_text("Rotated (layer 4, +20° toward the direction)").wait_for()
    assert re.fullmatch(r"\d+\.\d{3} nats", metric(tab, "KL(unsteered ‖ rotated)"))
    before, after = metric(tab, "Norm ‖x‖ before (layer 4)"), metric(tab, "Norm ‖x′‖ after")
    assert before == after and float(before) > 0
    assert page.screenshot("steering_rotate", tmp_path).stat().st_size > 10_000


def test_search_shows_each_direction_with_its_held_out_numbers(page, tmp_path):
    tab = choose_mode(page, "search", "Search a setting")
    trials = tab.get_by_role("spinbutton", name="Trials per direction")
    trials.fill("1")  # one trial per direction: the chosen point is that trial, checked on the held-out prompts
    trials.press("Enter")
    page.wait_idle(SLOW_CPU_S)
    tab.get_by_role("button", name="Search", exact=True).click()
    page.wait_idle(SLOW_CPU_S)
    tab.get_by_text(re.compile(r"\d+ trials? and the held-out checks in")).wait_for()
    for direction in ("Raise the behaviour", "Lower it"):
        tab.get_by_text(direction, exact=True).first.wait_for()
    charts = tab.locator('[data-testid="stPlotlyChart"]').filter(visible=True)  # section 1's chart is folded away
    assert charts.count() == 2  # one Pareto front per direction
    # Each direction shows either its held-out numbers or why none was chosen, never neither.
    kls = tab.locator('[data-testid="stMetric"]').filter(has_text="KL(unsteered ‖ steered), held out")
    refused = tab.get_by_text(re.compile(r"^No trial (raised|lowered) the behaviour"))
    assert kls.count() + refused.count() == 2
    for value in kls.locator('[data-testid="stMetricValue"]').all_inner_texts():
        assert re.fullmatch(r"\d+\.\d{3} nats", value.strip()), value
    strengths = tab.locator('[data-testid="stMetric"]').filter(has_text="Strength").locator('[data-testid="stMetricValue"]')
    for value in strengths.all_inner_texts():  # one signed number, a true minus: "−2.25" or "+40°", never "×-2.25"
        assert re.fullmatch(r"[+\u2212]\d[\d.]*(e[+\u2212]\d+)?°?", value.strip()), value
    chosen_captions = tab.get_by_text(re.compile(r"the best of 1 try on the search prompts"))
    assert chosen_captions.count() == kls.count()  # one trial: "1 try", not "1 tries"
    assert page.screenshot("steering_search", tmp_path).stat().st_size > 10_000


def test_combine_shows_each_behaviour_s_interaction_in_its_unit(page, tmp_path):
    tab = choose_mode(page, "compose", "Combine vectors")
    samples = tab.get_by_role("spinbutton", name="Samples")
    samples.fill("1")  # one sample per prompt and condition: the numbers are the same kind, in half the time
    samples.press("Enter")
    page.wait_idle(SLOW_CPU_S)
    prompts = tab.get_by_label("Prompts (one per line)")
    prompts.fill("I think the weather today is\nMy neighbour told me that")  # 2 of the 8 neutral prompts: a quarter of the work
    prompts.press("Control+Enter")
    page.wait_idle(SLOW_CPU_S)
    tab.get_by_role("button", name="Combine", exact=True).click()
    page.wait_idle(SLOW_CPU_S)
    interactions = tab.locator('[data-testid="stMetric"]').filter(has_text="Interaction —")
    interactions.first.wait_for()
    assert interactions.count() == 2  # one per behaviour the two vectors move
    for box in interactions.all():
        assert re.fullmatch(r"[+-]\d+\.\d{3}", box.locator('[data-testid="stMetricValue"]').inner_text().strip())
    assert re.fullmatch(r"\d+\.\d{3} nats", metric(tab, "KL(unsteered ‖ together)"))
    tab.get_by_text("2 prompts × 1 samples in each condition", exact=False).wait_for()  # the run used the typed prompts
    assert page.screenshot("steering_compose", tmp_path).stat().st_size > 10_000


def test_look_inside_says_it_recorded_the_generation_s_own_passes(page, tmp_path):
    tab = choose_mode(page, "record", "Look inside")
    tab.get_by_role("button", name="Record", exact=True).click()
    page.wait_idle(SLOW_CPU_S)
    tab.get_by_text("Captured during generation, no recompute").wait_for()
    passes = int(metric(tab, "Forward passes"))
    positions = int(metric(tab, "Positions recorded"))
    caption = tab.get_by_text("Captured during generation, no recompute").inner_text()
    generated = int(re.search(r"forward passes for (\d+) generated tokens", caption).group(1))
    assert passes == generated  # one pass over the prompt, then one per generated token but the last
    assert positions > generated  # the prompt's positions and the generated ones
    assert tab.locator('[data-testid="stPlotlyChart"]').filter(visible=True).count() == 2  # projections and norms
    assert page.screenshot("steering_record", tmp_path).stat().st_size > 10_000
