"""The SAE shipped for the default model (SmolLM2-135M-Instruct), inside this package: the Features page starts on it.

Made with (docs/FEATURES.md, "The shipped SAE")::

    python -m features train --out features/data/smollm2-135m-l9 --checkpoint /tmp/sae/l9-ckpt \
        --learning-rate 1e-3 --dead-after 250000 --tokens 2000000
    python -m features index features/data/smollm2-135m-l9
"""

from __future__ import annotations

from pathlib import Path

from features.files import SAEFolder, load_sae
from interp.errors import InputError
from interp.loading import LoadedModel

SHIPPED = Path(__file__).parent / "data" / "smollm2-135m-l9"


def shipped_sae(model: LoadedModel) -> SAEFolder:
    """The shipped SAE, if ``model`` is the one it was trained for (by its weights' hash)."""
    folder = load_sae(SHIPPED, d_model=model.info.d_model)
    made_for = folder.card.get("weights_sha256")
    if made_for and made_for != model.info.weights_sha256:
        raise InputError(
            "The shipped SAE was trained on SmolLM2-135M-Instruct; this model differs. Train one for it on the "
            "Features page (or python -m features train)."
        )
    return folder
