"""Automatic scores for an A/B experiment's responses: VADER sentiment, the kept reward model, perplexity.

People give feedback on few responses; automatic scores cover all of them. They reuse the measures the Steering
and RLHF pages use (:mod:`steering.scores`, :class:`steering.rlhf.RewardModel`), so a vector judged on the Steering
page is judged the same way on live traffic:

* **sentiment**: VADER compound score in [-1, 1] (a lexicon and rules; it never sees the served model);
* **reward**: the newest kept reward model trained on the served model's weights, if there is one;
* **perplexity**: how surprising the *unsteered* served model finds the response after its prompt (damage).

The model-based scores are one forward pass each, run as a job on the model's engine, so they take turns with
generation instead of fighting it; :class:`ScoreWorker` runs them on its own thread, off the request path.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
from collections.abc import Callable

from interp.loading import LoadedModel

log = logging.getLogger(__name__)

MAX_SCORED_TOKENS = 512  # a longer response is scored on its first 512 tokens: one forward pass stays short
MAX_WAITING = 10_000  # responses waiting for scores; beyond this a response simply has none (serving comes first)
AUTOMATIC_MEASURES = ("sentiment", "reward", "perplexity")


@dataclasses.dataclass(frozen=True)
class AutomaticScores:
    """One response's automatic scores; None where a score is not available (no reward model, no model, empty text)."""

    sentiment: float | None = None
    reward: float | None = None
    perplexity: float | None = None


def kept_reward_model(model: LoadedModel):
    """The newest reward model kept in the records that was trained on ``model``'s weights, or None."""
    from interp.records import RunStore

    try:
        store = RunStore()
        for record in store.list(kind="reward_model"):
            if record.weights_sha256 == model.info.weights_sha256 and record.run_id is not None:
                return store.load(record.run_id).result.reward_model
    except Exception as error:  # records unreadable: serve without reward scores rather than not at all
        log.warning("No reward model for automatic scores: %s", error)
    return None


class AutomaticScorer:
    """Scores a (prompt, response) pair; ``model`` None gives sentiment only."""

    def __init__(self, model: LoadedModel | None = None, reward=None) -> None:
        self.model = model
        self.reward = reward

    def __call__(self, prompt: str, text: str) -> AutomaticScores:
        from steering.scores import sentiment

        mood = float(sentiment([text])[0])
        if self.model is None or not text.strip():
            return AutomaticScores(sentiment=mood)
        from interp.engine.engine import run_job

        reward, perplexity = run_job(self.model, "A/B automatic scores", lambda: self._model_scores(prompt, text))
        return AutomaticScores(sentiment=mood, reward=reward, perplexity=perplexity)

    def _model_scores(self, prompt: str, text: str):
        """One engine job (a generator: it yields nothing, it runs between two decode steps)."""
        from steering.scores import perplexity

        ids = self.model.tokenizer(text, add_special_tokens=False).input_ids[:MAX_SCORED_TOKENS]
        value = float(perplexity(self.model, [prompt], [ids])[0]) if ids else math.nan
        reward = float(self.reward.score(self.model, [prompt], [text])[0]) if self.reward is not None else None
        return reward, (value if math.isfinite(value) else None)
        yield  # makes this a generator for Engine.submit_job


class ScoreWorker:
    """A daemon thread that scores submitted responses and hands each result to ``deliver(response_id, scores)``."""

    def __init__(self, score: Callable[[str, str], AutomaticScores], deliver: Callable[[str, AutomaticScores], None]) -> None:
        self._score = score
        self._deliver = deliver
        self._queue: queue.Queue[tuple[str, str, str] | None] = queue.Queue(MAX_WAITING)
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def submit(self, response_id: str, prompt: str, text: str) -> bool:
        """Queue a response; False (and no scores for it) when the queue is full."""
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="steerscope-ab-scores", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait((response_id, prompt, text))
            return True
        except queue.Full:
            log.warning("Automatic-score queue full; response %s is not scored.", response_id)
            return False

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every submitted response is scored; False when ``timeout`` passed first."""
        done = threading.Event()

        def finished() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=finished, daemon=True).start()
        return done.wait(timeout)

    def close(self) -> None:
        with self._start:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=30)
                self._thread = None

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                response_id, prompt, text = job
                try:
                    scores = self._score(prompt, text)
                except Exception as error:  # one response's scoring failure must not stop the others
                    log.warning("Automatic scores failed for response %s: %s", response_id, error)
                    continue
                self._deliver(response_id, scores)
            finally:
                self._queue.task_done()
