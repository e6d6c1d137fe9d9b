"""``pretrain``: plain language modelling on raw text (continued pre-training).

Texts are tokenized without a chat template, each followed by the EOS token, the loss on every
token (``engine.data.render``, kind "text"); a text longer than ``data.max_length`` becomes
several samples. Batches are packed unless ``pretrain.packing = false``.
"""

from __future__ import annotations

from engine.objectives.base import Objective


class Pretrain(Objective):
    """Next-token loss on every token of raw text, packed by default."""

    name = "pretrain"
    records = "text"

    def packed(self) -> bool:
        """Packed when ``pretrain.packing`` or ``data.packing`` says so."""
        return self.config.pretrain.packing or self.config.data.packing


OBJECTIVE = Pretrain
