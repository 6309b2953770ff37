"""A/B experiments through the real server: the official openai client sends `user` + `experiment`, every reply
carries its arm, and feedback and automatic scores show up in the summary."""

from __future__ import annotations

import json

import httpx
import pytest

from interp.records import RunStore
from serve.api import create_app
from serve.experiments import ExperimentBook, assign_arm
from serve.settings import ServerSettings
from tests.serve.conftest import running

EXPERIMENT = {
    "name": "joy-vs-none",
    "arms": [{"name": "none"}, {"name": "joy", "steering": [{"vector": "joy", "coefficient": 4.0}]}],
    "split": 0.5,
    "metric": "thumbs",
}
PROMPT = "When Mary and John went to the"


@pytest.fixture(scope="module")
def ab_server(tiny_llama, vector_library, tmp_path_factory):
    """(base URL, book) of a server with an experiment book over the tiny Llama; records in a folder of its own."""
    data = tmp_path_factory.mktemp("ab-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STEERSCOPE_DATA", str(data))
        patch.delenv("STEERSCOPE_TRACKING_URI", raising=False)
        book = ExperimentBook(data / "experiments", model=tiny_llama)
        app = create_app(tiny_llama, ServerSettings(max_tokens=64), library=vector_library, experiments=book)
        try:
            with running(app) as url:
                yield url, book
        finally:
            book.close()


@pytest.fixture(scope="module")
def openai_client(ab_server):
    import openai

    with openai.OpenAI(base_url=f"{ab_server[0]}/v1", api_key="unused", max_retries=0, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def experiment(ab_server) -> dict:
    answer = httpx.post(f"{ab_server[0]}/v1/experiments", json=EXPERIMENT, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def model_id(openai_client) -> str:
    return openai_client.models.list().data[0].id


def complete(client, model_id: str, user: str, **extra):
    return client.completions.create(
        model=model_id,
        prompt=PROMPT,
        max_tokens=6,
        temperature=0,
        seed=1,
        user=user,
        extra_body={"experiment": "joy-vs-none", **extra},
    )


def test_created_experiment_is_listed(ab_server, experiment):
    assert experiment["name"] == "joy-vs-none" and experiment["arm_descriptions"] == ["unsteered", "joy ×4"]
    listed = httpx.get(f"{ab_server[0]}/v1/experiments", timeout=30).json()
    assert [e["name"] for e in listed["data"]] == ["joy-vs-none"]


def test_replies_carry_their_arm_and_its_steering(ab_server, experiment, openai_client, model_id):
    book = ab_server[1]
    users = [f"user-{i}" for i in range(8)]
    arms = {u: assign_arm(book.get("joy-vs-none"), u).name for u in users}
    assert set(arms.values()) == {"none", "joy"}
    unsteered = openai_client.completions.create(model=model_id, prompt=PROMPT, max_tokens=6, temperature=0, seed=1)
    steered = openai_client.completions.create(
        model=model_id,
        prompt=PROMPT,
        max_tokens=6,
        temperature=0,
        seed=1,
        extra_body={"steering": EXPERIMENT["arms"][1]["steering"]},
    )
    assert unsteered.choices[0].text != steered.choices[0].text  # the vector changes the text, so the check below can fail
    seen = {}
    for user in users + users:  # each user twice: the same arm both times
        reply = complete(openai_client, model_id, user)
        tag = reply.model_extra["steerscope"]
        assert tag["experiment"] == "joy-vs-none" and tag["arm"] == arms[user]
        expected = steered if tag["arm"] == "joy" else unsteered
        assert reply.choices[0].text == expected.choices[0].text
        seen.setdefault(user, set()).add(tag["arm"])
    assert all(len(a) == 1 for a in seen.values())


def test_a_streamed_reply_names_its_arm_in_the_first_chunk(ab_server, experiment, openai_client, model_id):
    stream = openai_client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=4,
        temperature=0,
        user="streamer",
        stream=True,
        extra_body={"experiment": "joy-vs-none"},
    )
    chunks = list(stream)
    tag = chunks[0].model_extra["steerscope"]
    assert tag["arm"] == assign_arm(ab_server[1].get("joy-vs-none"), "streamer").name and tag["response_id"]


def test_feedback_and_summary_counts(ab_server, experiment, openai_client, model_id):
    url, book = ab_server
    before = httpx.get(f"{url}/v1/experiments/joy-vs-none", timeout=30).json()
    replies = [complete(openai_client, model_id, f"fb-{i}") for i in range(6)]
    ups = {"none": 0, "joy": 0}
    for i, reply in enumerate(replies):
        tag = reply.model_extra["steerscope"]
        thumb = i % 2 == 0
        ups[tag["arm"]] += thumb
        answer = httpx.post(
            f"{url}/v1/feedback", json={"response_id": tag["response_id"], "thumb": thumb, "score": float(i)}, timeout=30
        )
        assert answer.status_code == 200, answer.text
    assert book.wait_for_scores(timeout=120)
    summary = httpx.get(f"{url}/v1/experiments/joy-vs-none", timeout=30).json()
    old = {a["name"]: a for a in before["arms"]}
    for arm in summary["arms"]:
        arm_replies = [r for r in replies if r.model_extra["steerscope"]["arm"] == arm["name"]]
        assert arm["responses"] == old[arm["name"]]["responses"] + len(arm_replies)
        assert arm["feedback"] == old[arm["name"]]["feedback"] + len(arm_replies)
        thumbs = next(e for e in arm["estimates"] if e["measure"] == "thumbs")
        assert thumbs["n"] == len(arm_replies)
        if arm_replies:
            assert thumbs["mean"] == pytest.approx(ups[arm["name"]] / len(arm_replies))
        for measure in ("sentiment", "perplexity"):  # scored in the background, for every response
            estimate = next(e for e in arm["estimates"] if e["measure"] == measure)
            assert estimate["n"] == arm["responses"]
    assert summary["metric"] == "thumbs" and summary["sentence"] == summary["comparisons"][0]["sentence"]
    json.dumps(summary, allow_nan=False)  # plain JSON: NaN became null


def test_keep_stores_the_experiment_in_the_records(ab_server, experiment):
    url, _ = ab_server
    answer = httpx.post(f"{url}/v1/experiments/joy-vs-none/keep", json={"note": "from the test"}, timeout=60)
    assert answer.status_code == 200, answer.text
    kept = RunStore().load(answer.json()["run_id"])
    assert kept.kind == "ab_experiment" and kept.note == "from the test"
    assert kept.spec.experiment().name == "joy-vs-none" and kept.result.arms[1].description == "joy ×4"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("post", "/v1/feedback", {"response_id": "nope", "thumb": True}, 400, "no response 'nope'"),
        ("post", "/v1/feedback", {"response_id": "nope"}, 400, "needs a thumb"),
        ("post", "/v1/feedback", {"response_id": "x", "thumb": "maybe"}, 422, "thumb"),
        ("post", "/v1/experiments", {**EXPERIMENT, "arms": [{"name": "a"}, {"name": "a"}]}, 400, "both called 'a'"),
        ("post", "/v1/experiments", {**EXPERIMENT, "name": "s", "split": 1.5}, 400, "between 0 and 1"),
        ("post", "/v1/experiments", {**EXPERIMENT, "name": "bad name!"}, 400, "experiment name"),
        ("post", "/v1/experiments", EXPERIMENT, 400, "already an experiment called joy-vs-none"),
        ("get", "/v1/experiments/unknown", None, 400, "the experiments are: joy-vs-none"),
        ("post", "/v1/completions", {"prompt": "Hi", "max_tokens": 2, "experiment": "joy-vs-none"}, 400, "`user` field"),
        ("post", "/v1/completions", {"prompt": "Hi", "max_tokens": 2, "experiment": "other", "user": "u"}, 400, "joy-vs-none"),
    ],
)
def test_bad_requests_get_an_openai_error_and_the_server_stays_healthy(
    ab_server, experiment, model_id, method, path, body, status, message
):
    url, _ = ab_server
    if path == "/v1/completions":
        body = {**body, "model": model_id}
    answer = getattr(httpx, method)(f"{url}{path}", **({"json": body} if body is not None else {}), timeout=30)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and message in error["message"]
    assert "Traceback" not in answer.text
    assert httpx.get(f"{url}/v1/experiments/joy-vs-none", timeout=30).status_code == 200
