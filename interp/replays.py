"""How each kind of run is re-executed from its record (registered with :mod:`interp.records`).

Every entry reads only the record's inputs, settings and seed (plus, for steering, the vector
stored with the result), so a replay repeats exactly what the user ran.
"""

from __future__ import annotations

from interp.errors import InputError
from interp.loading import LoadedModel
from interp.records import Bundle, RunRecord, register_replay


def _attention(model: LoadedModel, record: RunRecord):
    from interp.attention import attention_patterns

    return attention_patterns(model, record.inputs["prompt"], max_tokens=record.settings.get("max_tokens"))


def _lens(model: LoadedModel, record: RunRecord):
    from interp.lens import logit_lens

    return logit_lens(model, record.inputs["prompt"], record.inputs.get("target"), k=record.settings.get("k", 5))


def _head_scores(model: LoadedModel, record: RunRecord):
    from interp.attention import compute_head_scores

    return compute_head_scores(model, **record.settings)


def _attribution(model: LoadedModel, record: RunRecord):
    from interp.attribution import Target, attribute, faithfulness

    target = Target(**record.inputs["target"])
    settings = dict(record.settings)
    method = settings.pop("method")
    result = attribute(model, record.inputs["prompt"], target, method, seed=record.seed or 0, **settings)
    return Bundle({"attribution": result, "faithfulness": faithfulness(model, result)})


def _patching(model: LoadedModel, record: RunRecord):
    from interp.circuit_presets import custom_task, preset_task, with_metric
    from interp.circuits import attribution_patch, patch_sweep

    task_inputs = record.inputs
    if task_inputs["task"] == "custom":
        task = custom_task(model, task_inputs["clean"], task_inputs["corrupted"], task_inputs["answer"], task_inputs["wrong"])
    else:
        task = preset_task(model, task_inputs["task"])
    task = with_metric(task, record.settings.get("metric", task.metric.kind))  # runs kept before the choice: the task's own
    kind, direction = record.settings["kind"], record.settings["direction"]
    return Bundle(
        {
            "activation": patch_sweep(model, task.clean, task.corrupted, task.metric, kind, direction=direction),
            "attribution": attribution_patch(model, task.clean, task.corrupted, task.metric, kind, direction=direction),
        }
    )


def _behaviour_scorer(model: LoadedModel, record: RunRecord):
    """The scorer a steering run used: a built-in one by name, or the reward model kept with the run."""
    from steering.reward import reward_scorer
    from steering.scores import SCORERS

    name = record.settings["scorer"]
    if name == "reward":
        reward = record.result.parts.get("reward_model")
        if reward is None:
            raise InputError("This run was scored by a reward model that was not kept with it, so it cannot be replayed.")
        return reward_scorer(model, reward)
    if name not in SCORERS:
        raise InputError(f"This run used the scorer {name!r}, which this version of Steerscope does not have.")
    return SCORERS[name]


def _steering_evaluation(model: LoadedModel, record: RunRecord):
    from steering.sweep import evaluate

    vector = record.result.parts["vector"]
    s = record.settings
    evaluation = evaluate(
        model,
        vector,
        s["layer"],
        s["coefficient"],
        _behaviour_scorer(model, record),
        prompts=tuple(record.inputs["prompts"]),
        n_samples=s["n_samples"],
        max_new_tokens=s["max_new_tokens"],
        seed=record.seed or 0,
    )
    return Bundle({**record.result.parts, "evaluation": evaluation})


def _steering_sweep(model: LoadedModel, record: RunRecord):
    from steering.sweep import sweep

    vector = record.result.parts["vector"]
    s = record.settings
    result = sweep(
        model,
        vector,
        _behaviour_scorer(model, record),
        layers=s["layers"],
        coefficients=s["coefficients"],
        prompts=tuple(record.inputs["prompts"]),
        n_samples=s["n_samples"],
        max_new_tokens=s["max_new_tokens"],
        seed=record.seed or 0,
        goal=s["goal"],
    )
    return Bundle({**record.result.parts, "sweep": result})


def _reward(model: LoadedModel, record: RunRecord):
    from steering.reward import preferences_from_inputs, split_by_prompt, train_reward_model

    train, test = split_by_prompt(preferences_from_inputs(record.inputs))
    data_name = record.inputs.get("data", "built-in")
    return train_reward_model(model, train, test, seed=record.seed or 0, data_name=data_name, **record.settings)


register_replay("attention", _attention)
register_replay("logit_lens", _lens)
register_replay("head_scores", _head_scores)
register_replay("attribution", _attribution)
register_replay("patching", _patching)
register_replay("steering_evaluation", _steering_evaluation)
register_replay("steering_sweep", _steering_sweep)
register_replay("reward_model", _reward)


def _attribution_comparison(model: LoadedModel, record: RunRecord):
    from interp.attribution import Target, attribute, faithfulness

    target = Target(**record.inputs["target"])
    parts = {}
    for method in record.settings["methods"]:
        options = record.settings["options"].get(method, {})
        result = attribute(
            model, record.inputs["prompt"], target, method, budget=record.settings["budget"], seed=record.seed or 0, **options
        )
        parts[method] = Bundle({"attribution": result, "faithfulness": faithfulness(model, result)})
    return Bundle(parts)


register_replay("attribution_comparison", _attribution_comparison)


def _dpo(model: LoadedModel, record: RunRecord):
    import tempfile

    from steering.reward import preferences_from_inputs, split_by_prompt
    from steering.rlhf import train_dpo

    train, _ = split_by_prompt(preferences_from_inputs(record.inputs))
    result = train_dpo(model, train, tempfile.mkdtemp(prefix="steerscope-replay-dpo-"), seed=record.seed or 0, **record.settings)
    return Bundle({"log": list(result.log), "steps_done": result.steps_done})


# Training runs on the CPU are deterministic here, but a library update can reorder float sums.
register_replay("dpo", _dpo, tolerance=1e-4)
